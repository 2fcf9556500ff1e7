"""The Compliance API Activity Feed as a model, independent of HTTP.

Kept apart from the server so the API's semantics (ordering, cursors, filters, limit bounds,
errors, the shared rate budget, late indexing, the `compliance_api_accessed` side effect) can be
read and changed in one place, and so `demo`, `simulate`, the tests and the benchmark all meet
the same API. Every notion of "now" comes from `clock()`, the API's clock, which may
deliberately differ from the host's (`clock_offset`) to test a collector under clock skew.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from ..api import ACTIVITIES_PATH
from ..keyshape import GOOD_PREFIXES
from ..timeutil import epoch, format_rfc3339
from .factory import CREATED_FORMS, ActivityFactory, _tagged, activity_types, created_instant

ODD_FORMS = 0.05  # the share of generated activities whose created_at is not microseconds + Z

PARAMS = {"limit", "after_id", "before_id", "order", "created_at.gte", "created_at.gt",
          "created_at.lt", "created_at.lte", "activity_types[]", "exclude_activity_types[]",
          "actor_ids[]", "user_ids[]", "organization_ids[]"}
SCOPE = "read:compliance_activities"


@dataclass
class Response:
    """What the model answers, ready for any transport (the HTTP server, or a test calling
    `handle()` directly without a socket)."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(order=True)
class _Entry:
    """A record with its place in the feed. The key is (created_at epoch, id), the API's order;
    it is stored rather than derived so a malformed record can still be placed."""

    key: tuple[float, str]
    visible_at: float = field(compare=False)
    record: dict[str, Any] = field(compare=False)


def _error(status: int, kind: str, message: str, **headers: str) -> Response:
    """An error in the API's envelope; `x-should-retry: false` where the API says retrying is futile."""
    rid = "req_" + uuid.uuid4().hex[:24]
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    hdrs = {"content-type": "application/json", "request-id": rid}
    if status < 500 and status != 429:
        hdrs["x-should-retry"] = "false"
    hdrs.update(headers)
    return Response(status, hdrs, json.dumps(body).encode())


class FeedModel:
    """The API's behaviour, independent of HTTP (`SimServer` is a thin wrapper around it).

    `clock` is the API's base clock (default: the host's `time.time`) and `clock_offset` is added
    to it on every reading, so `clock_offset=3600.0` gives an API one hour ahead of the host.
    `clock_offset` is a plain attribute, read on every call: a test may step it while running.
    """

    def __init__(self, *, keys: Mapping[str, Iterable[str]] | None = None, accept_any_key: bool = False,
                 side_effects: bool = True, accessed_delay: float = 1.0, rate_limit: int = 600,
                 clock: Callable[[], float] | None = None, clock_offset: float = 0.0, seed: int = 7,
                 known_types: Iterable[str] | None = None, request_log: int = 10_000,
                 key_orgs: Mapping[str, str] | None = None, rate_window: float = 60.0) -> None:
        self.keys = {k: set(v) for k, v in (keys or {}).items()}
        self.accept_any_key = accept_any_key
        self.side_effects = side_effects
        self.accessed_delay = accessed_delay
        self.rate_limit = rate_limit
        self.rate_window = rate_window  # seconds; the API's is a minute, tests shorten it
        # A key belongs to one organization: it reads that organization's activities only, and
        # all keys of an organization share its rate budget (keys not named here share one).
        self.key_orgs = dict(key_orgs or {})
        self.base_clock: Callable[[], float] = clock or time.time
        self.clock_offset = clock_offset
        self.known_types = set(known_types) if known_types is not None else None  # None: all of the data file
        self.factory = ActivityFactory(seed)
        self.lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._by_type: dict[str | None, list[_Entry]] = {}
        self._by_id: dict[str, _Entry] = {}
        self._recent: dict[str | None, list[float]] = {}
        # Test-only: the decoded targets of the requests that reached the listing (401s, 429s and
        # injected faults are not here), oldest first. Nothing in the model reads it; it is
        # bounded so a long-running `simulate` does not grow without limit. A deque: index and
        # iterate it like a list, but do not slice it.
        self.requests: deque[str] = deque(maxlen=request_log)

    def clock(self) -> float:
        """The API's "now", in epoch seconds: visibility, rate limits and access records use it."""
        return self.base_clock() + self.clock_offset

    # -- data ---------------------------------------------------------------------------------
    def add(self, record: Any, visible_at: float | None = None,
            sort_key: tuple[float, str] | None = None) -> Any:
        """Add one activity, visible from `visible_at` on the API's clock (default: at once).

        `sort_key` is the (epoch, id) place in the feed, for records that cannot supply their
        own: deliberately malformed ones (no id, an unparseable `created_at`, not even a dict)
        that the tests, and fault modes of the simulator, put in the feed to see the plugin
        reject them. Well-formed records leave it out.
        """
        entry = _Entry(sort_key or (epoch(record["created_at"]), record["id"]),
                       visible_at if visible_at is not None else 0.0, record)
        kind = record.get("type") if isinstance(record, dict) else None
        with self.lock:
            bisect.insort(self._entries, entry)
            bisect.insort(self._by_type.setdefault(kind, []), entry)
            self._by_id[entry.key[1]] = entry
        return record

    def extend(self, records: Iterable[dict[str, Any]], visible_at: float | None = None) -> None:
        """Add many well-formed activities with one sort, not one insort each (bulk backfills)."""
        new = [_Entry((epoch(r["created_at"]), r["id"]), visible_at or 0.0, r) for r in records]
        with self.lock:
            self._entries = sorted(self._entries + new)
            for e in new:
                self._by_id[e.record["id"]] = e
                self._by_type.setdefault(e.record["type"], []).append(e)
            for lst in self._by_type.values():
                lst.sort()

    def generate(self, count: int, start: float, end: float, kind: str | None = None,
                 visible_at: float | None = None) -> list[dict[str, Any]]:
        """`count` activities created uniformly between `start` and `end` (epoch seconds)."""
        rng, make = self.factory.rng, self.factory.make
        moments: list[tuple[float, str | None]] = []
        for _ in range(count):
            if rng.random() < ODD_FORMS:
                form = rng.choice(CREATED_FORMS)
                moments.append((created_instant(start, end, form, rng), form))
            else:
                moments.append((rng.uniform(start, end), None))
        moments.sort(key=lambda m: m[0])  # in time order: a person's day starts with their login
        records = [make(moment, kind, form=form) for moment, form in moments]
        self.extend(records, visible_at)
        return records

    def all_records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e.record for e in self._entries]

    # -- HTTP semantics -----------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        """Answer one request; `headers` has lower-case names. The checks run in a fixed order
        (key, rate budget, route, scope, parameters) because it decides which error a request
        with several problems gets, and the plugin's error handling is tested against that."""
        parts = urlsplit(target)
        key = headers.get("x-api-key") or ""
        if not key and headers.get("authorization", "").startswith("Bearer "):
            key = headers["authorization"][7:]
        if not self._known(key):
            return _error(401, "authentication_error", "The API key provided is invalid or has been revoked.")
        now = self.clock()
        with self.lock:
            window = self.rate_window
            recent = self._recent[self.key_orgs.get(key)] = [
                t for t in self._recent.get(self.key_orgs.get(key), []) if t > now - window]
            limited = len(recent) >= self.rate_limit
            if not limited:
                recent.append(now)
            remaining = max(0, self.rate_limit - len(recent))
            reset = (recent[0] + window) if recent else now
        rl = {"anthropic-ratelimit-requests-limit": str(self.rate_limit),
              "anthropic-ratelimit-requests-remaining": str(remaining),
              "anthropic-ratelimit-requests-reset": format_rfc3339(reset)}
        if limited:
            return _error(429, "rate_limit_error",
                          f"Rate limit of {self.rate_limit} requests per minute per parent organization exceeded.",
                          **{"retry-after": str(max(1, math.ceil(reset - now)))}, **rl)
        if method != "GET" or parts.path != ACTIVITIES_PATH:
            resp = _error(404, "not_found_error", f"Not found: {method} {parts.path}", **rl)
        elif not self._scoped(key):
            resp = _error(403, "permission_error",
                          "Missing required scopes. Got: ['read:compliance_user_data'] "
                          f"Needed: ['{SCOPE}']", **rl)
        else:
            resp = self._list(parse_qsl(parts.query, keep_blank_values=True), now, self.key_orgs.get(key))
            resp.headers.update(rl)
            if resp.status == 200:
                resp.headers["anthropic-organization-id"] = self.key_orgs.get(key) or self.factory.orgs[0][1]
        if self.side_effects:
            self._record_access(key, target, resp, now, headers.get("user-agent") or "")
        self.requests.append(unquote(target))  # deque.append is atomic: no lock needed
        return resp

    def _known(self, key: str) -> bool:
        if self.accept_any_key:
            return key.startswith(GOOD_PREFIXES) and len(key) > 20
        return key in self.keys

    def _scoped(self, key: str) -> bool:
        return self.accept_any_key or SCOPE in self.keys.get(key, set())

    def _record_access(self, key: str, target: str, resp: Response, now: float, agent: str) -> None:
        """The audit record the real API writes for every call, indexed a little later: a
        collector that polls its own feed must cope with an endless trickle of these."""
        rng = random.Random(key)  # one stable api_key_id per key, without keeping the key
        record = {
            "id": self.factory.new_id(), "created_at": format_rfc3339(now),
            "organization_id": None, "organization_uuid": None,
            "actor": {"type": "api_actor", "api_key_id": _tagged(rng, "apikey_01", 22),
                      "ip_address": "127.0.0.1", "user_agent": agent},
            "type": "compliance_api_accessed", "request_id": resp.headers.get("request-id"),
            "request_method": "GET", "status_code": resp.status,
            "url": "https://api.anthropic.com" + target, "request_body": None,
        }
        self.add(record, visible_at=now + self.accessed_delay)

    def _list(self, pairs: list[tuple[str, str]], now: float, own_org: str | None = None) -> Response:
        bad = lambda msg: _error(400, "invalid_request_error", msg)  # noqa: E731
        multi: dict[str, list[str]] = {}
        single: dict[str, str] = {}
        for name, value in pairs:
            if name not in PARAMS:
                return bad(f"Unknown query parameter: {name}")
            if name.endswith("[]"):
                multi.setdefault(name, []).append(value)
            else:
                single[name] = value
        try:
            limit = int(single.get("limit", "100"))
        except ValueError:
            return bad(f"The limit parameter must be an integer. Got {single['limit']}.")
        if not 1 <= limit <= 5000:
            return bad(f"The limit parameter must be between 1 and 5000, inclusive. Got {limit}.")
        order = single.get("order", "desc")
        if order not in ("asc", "desc"):
            return bad(f"The order parameter must be 'asc' or 'desc'. Got {order!r}.")
        if "after_id" in single and "before_id" in single:
            return bad("Only one of `after_id` and `before_id` may be given.")
        types = multi.get("activity_types[]", [])
        exclude = multi.get("exclude_activity_types[]", [])
        if types and exclude:
            return bad("`activity_types[]` cannot be combined with `exclude_activity_types[]`.")
        known = self.known_types if self.known_types is not None else activity_types()
        for t in types + exclude:
            if t not in known:
                return bad(f"Unknown activity type: {t!r}")
        bounds: dict[str, float] = {}
        for op in ("gte", "gt", "lt", "lte"):
            name = f"created_at.{op}"
            if name in single:
                try:
                    bounds[op] = epoch(single[name])
                except ValueError:
                    return bad(f"The `{name}` parameter contains an invalid timestamp format. "
                               f"Expected RFC 3339. Got \"{single[name]}\".")
        cursor_name = "after_id" if "after_id" in single else "before_id" if "before_id" in single else None
        cursor = None
        if cursor_name:
            cursor = self._by_id.get(single[cursor_name])
            if cursor is None:
                return bad(f"Invalid `{cursor_name}`. No activity found for `{cursor_name}` \"{single[cursor_name]}\".")
        actors = set(multi.get("actor_ids[]", []) + multi.get("user_ids[]", []))
        orgs = set(multi.get("organization_ids[]", []))
        excluded = set(exclude)

        def keep(e: _Entry) -> bool:
            r = e.record if isinstance(e.record, dict) else {}
            if e.visible_at > now:  # not indexed yet, on the API's clock
                return False
            if excluded and r.get("type") in excluded:
                return False
            ts = e.key[0]
            if ("gte" in bounds and ts < bounds["gte"]) or ("gt" in bounds and ts <= bounds["gt"]):
                return False
            if ("lt" in bounds and ts >= bounds["lt"]) or ("lte" in bounds and ts > bounds["lte"]):
                return False
            actor = r.get("actor") if isinstance(r.get("actor"), dict) else {}
            if actors and actor.get("user_id") not in actors:
                return False
            if own_org is not None and r.get("organization_id") not in (own_org, None):  # another tenant's
                return False
            if orgs and r.get("organization_id") is not None and not (
                    r.get("organization_id") in orgs or r.get("organization_uuid") in orgs):
                return False
            return True

        ascending = order == "asc"
        toward_start = cursor_name == "before_id"  # walk against the sort order
        walk_up = ascending != toward_start
        with self.lock:
            pools = [self._by_type.get(t, []) for t in types] if types else [self._entries]
            streams = [self._walk(pool, cursor, bounds, walk_up) for pool in pools]
            merged = heapq.merge(*streams, reverse=not walk_up) if len(streams) > 1 else streams[0]
            picked = list(itertools.islice((e for e in merged if keep(e)), limit + 1))
        has_more = len(picked) > limit
        picked = picked[:limit]
        if toward_start:
            picked.reverse()
        data = [e.record for e in picked]
        body = {"data": data, "has_more": has_more,
                "first_id": picked[0].key[1] if picked else None, "last_id": picked[-1].key[1] if picked else None}
        rid = "req_" + uuid.uuid4().hex[:24]
        try:
            payload = orjson.dumps(body)
        except TypeError:  # what orjson will not write (a lone surrogate, an int beyond 64 bits) is valid JSON
            payload = json.dumps(body).encode()
        return Response(200, {"content-type": "application/json", "request-id": rid}, payload)

    @staticmethod
    def _walk(pool: list[_Entry], cursor: _Entry | None, bounds: dict[str, float], up: bool) -> Iterator[_Entry]:
        """Entries strictly beyond the cursor in the walking direction, narrowed by time bounds
        with bisection, so a deep page costs a slice, not a scan of the whole feed."""
        lo, hi = 0, len(pool)
        low_ts = bounds.get("gte", bounds.get("gt"))
        high_ts = bounds.get("lte", bounds.get("lt"))
        if low_ts is not None:
            lo = bisect.bisect_left(pool, _Entry((low_ts, ""), 0, {}))
        if high_ts is not None:
            hi = bisect.bisect_right(pool, _Entry((high_ts, "\uffff"), 0, {}))
        if cursor is not None:
            if up:
                lo = max(lo, bisect.bisect_right(pool, cursor))
            else:
                hi = min(hi, bisect.bisect_left(pool, cursor))
        indices = range(lo, hi) if up else range(hi - 1, lo - 1, -1)
        return (pool[i] for i in indices)
