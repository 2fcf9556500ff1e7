"""A model of the Compliance API Activity Feed, shared by `demo`, `simulate`, the tests and the
benchmark: newest-first by default with `order=asc`, id tie-break, opaque-looking cursors,
filters, limit bounds, 400/401/403/429/5xx bodies and headers, a shared 600/min budget,
late-indexed activities, and the `compliance_api_accessed` record every request leaves behind.
Activities are drawn from the real activity types (data/activity_types.json).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from .timeutil import epoch, format_rfc3339

ACTIVITIES_PATH = "/v1/compliance/activities"
ALL_ACTORS = ("user_actor", "api_actor", "admin_api_key_actor", "unauthenticated_user_actor",
              "anthropic_actor", "system_actor", "scim_directory_sync_actor", "service_account_actor",
              "federated_identity_actor", "federated_actor", "attested_device_actor")
NO_ORG_TYPES = {"compliance_api_accessed", "user_logged_out", "sso_login_initiated",
                "sso_login_failed", "sso_login_succeeded", "magic_link_login_initiated",
                "magic_link_login_failed", "magic_link_login_succeeded"}
COMMON = ("claude_chat_created", "claude_file_uploaded", "sso_login_succeeded",
          "claude_project_created", "claude_chat_viewed", "user_logged_out")
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PARAMS = {"limit", "after_id", "before_id", "order", "created_at.gte", "created_at.gt",
          "created_at.lt", "created_at.lte", "activity_types[]", "exclude_activity_types[]",
          "actor_ids[]", "user_ids[]", "organization_ids[]"}


@lru_cache(maxsize=1)
def activity_types() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("data/activity_types.json").read_text("utf-8")
    types = json.loads(text)["types"]
    types.setdefault("cmek_preserve", dict(types["anthropic_access"]))
    return {name: {"actor_types": (spec or {}).get("actor_types") or list(ALL_ACTORS),
                   "fields": (spec or {}).get("fields") or {}} for name, spec in types.items()}


def _tagged(rng: random.Random, prefix: str, n: int = 24) -> str:
    return prefix + "".join(rng.choice(B58) for _ in range(n))


class ActivityFactory:
    """Realistic activities: the real types, their allowed actor variants and flat fields."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.types = activity_types()
        self.names = sorted(self.types)
        self.orgs = [(_tagged(rng, "org_"), str(uuid.UUID(int=rng.getrandbits(128), version=4)))
                     for _ in range(2)]
        first = ["dana", "li", "amara", "jonas", "priya", "sam", "yuki", "omar", "eva", "kofi"]
        last = ["ruiz", "chen", "okafor", "berg", "nair", "lee", "sato", "haddad", "novak", "mensah"]
        self.users = [(f"{f}.{l}@example.com", _tagged(rng, "user_")) for f, l in zip(first, last)]
        self.counter = itertools.count()

    def new_id(self) -> str:
        return "activity_01" + "".join(self.rng.choice(B58) for _ in range(22))

    def actor(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        ip = f"203.0.113.{rng.randint(1, 254)}"
        agent = rng.choice(["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15",
                            "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Claude/1.0 (iOS 18.1)"])
        email, user_id = rng.choice(self.users)
        if kind == "user_actor":
            return {"type": kind, "email_address": email, "user_id": user_id, "ip_address": ip, "user_agent": agent}
        if kind == "api_actor":
            return {"type": kind, "api_key_id": _tagged(rng, "apikey_01", 22), "ip_address": ip, "user_agent": "python-requests/2.32"}
        if kind == "admin_api_key_actor":
            return {"type": kind, "admin_api_key_id": _tagged(rng, "adminkey_01", 22), "ip_address": ip, "user_agent": agent}
        if kind == "unauthenticated_user_actor":
            return {"type": kind, "ip_address": ip, "user_agent": agent, "unauthenticated_email_address": email}
        if kind == "anthropic_actor":
            return {"type": kind, "email_address": None}
        if kind == "system_actor":
            return {"type": kind, "service": rng.choice([None, "memory_migration", "retention"])}
        if kind == "scim_directory_sync_actor":
            return {"type": kind, "workos_event_id": _tagged(rng, "event_01", 24),
                    "directory_id": _tagged(rng, "directory_01", 24), "idp_connection_type": "OktaSCIMV2"}
        if kind == "service_account_actor":
            return {"type": kind, "service_account_id": _tagged(rng, "svcacct_01", 22), "ip_address": ip, "user_agent": agent}
        if kind == "federated_identity_actor":
            return {"type": kind, "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:example/app:ref:refs/heads/main",
                    "audience": ["https://api.anthropic.com"], "ip_address": ip, "user_agent": agent}
        if kind == "federated_actor":
            return {"type": kind, "provider": {"type": "aws", "account_id": "123456789012",
                                                "signed_principal": "arn:aws:iam::123456789012:role/ci"},
                    "subject": None, "ip_address": ip, "user_agent": agent}
        return {"type": kind, "external_client_id": _tagged(rng, "client_", 16), "kid_hash": _tagged(rng, "", 32),
                "ip_address": ip, "user_agent": agent}

    def _value(self, name: str, kind: str) -> Any:
        rng = self.rng
        if "boolean" in kind:
            return rng.random() < 0.5
        if "number" in kind:
            return rng.randint(1, 500)
        if "array of string" in kind:
            return [rng.choice(["read:compliance_activities", "api:admin", "user", "admin"])]
        if "array of object" in kind:
            return [{"type": "setting", "previous_value": False, "current_value": True}]
        if kind.startswith("object"):
            return {"type": "message", "id": _tagged(rng, "msg_01", 22), "parent": None}
        if "RFC 3339" in kind:
            return format_rfc3339(time.time() - rng.randint(3600, 172800))
        if "email" in name:
            return rng.choice(self.users)[0]
        if name.endswith("_id"):
            return _tagged(rng, name.removesuffix("_id")[:12] + "_01", 22)
        if "enum" in kind:
            return rng.choice(["created", "updated", "safety_review", "GET"])
        if "null" in kind and rng.random() < 0.3:
            return None
        return rng.choice(["Quarterly report", "Onboarding notes", "design-review", "main"])

    def make(self, created: float, kind: str | None = None, **extra: Any) -> dict[str, Any]:
        rng = self.rng
        if kind is None:
            kind = rng.choice(COMMON) if rng.random() < 0.4 else rng.choice(self.names)
        spec = self.types.get(kind, {"actor_types": ["user_actor"], "fields": {}})
        org_id, org_uuid = rng.choice(self.orgs)
        no_org = kind in NO_ORG_TYPES
        record: dict[str, Any] = {
            "id": self.new_id(),
            "created_at": format_rfc3339(created) if created % 1 else format_rfc3339(created + 1e-6 * rng.randint(1, 999999)),
            "organization_id": None if no_org else org_id,
            "organization_uuid": None if no_org else org_uuid,
            "actor": self.actor(rng.choice(spec["actor_types"])),
            "type": kind,
        }
        for name, ftype in spec["fields"].items():
            if ftype.startswith("optional") and rng.random() < 0.2:
                continue
            record[name] = self._value(name, ftype)
        record.update(extra)
        return record


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    fault: str | None = None


@dataclass(order=True)
class _Entry:
    key: tuple[float, str]
    visible_at: float = field(compare=False)
    record: dict[str, Any] = field(compare=False)


def _error(status: int, kind: str, message: str, **headers: str) -> Response:
    rid = "req_" + uuid.uuid4().hex[:24]
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    hdrs = {"content-type": "application/json", "request-id": rid}
    if status < 500 and status != 429:
        hdrs["x-should-retry"] = "false"
    hdrs.update(headers)
    return Response(status, hdrs, json.dumps(body).encode())


class FeedModel:
    """The API's behaviour, independent of HTTP (the server below is a thin wrapper)."""

    def __init__(self, *, keys: Mapping[str, Iterable[str]] | None = None, accept_any_key: bool = False,
                 side_effects: bool = True, accessed_delay: float = 1.0, rate_limit: int = 600,
                 clock: Callable[[], float] = time.time, seed: int = 7,
                 faults: Callable[[int], str | None] | None = None,
                 known_types: Iterable[str] | None = None) -> None:
        self.keys = {k: set(v) for k, v in (keys or {}).items()}
        self.accept_any_key = accept_any_key
        self.side_effects = side_effects
        self.accessed_delay = accessed_delay
        self.rate_limit = rate_limit
        self.clock = clock
        self.faults = faults
        self.known_types = set(known_types) if known_types is not None else None  # None: all of the data file
        self.factory = ActivityFactory(seed)
        self.lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._by_type: dict[str, list[_Entry]] = {}
        self._by_id: dict[str, _Entry] = {}
        self._recent: list[float] = []
        self.requests: list[str] = []  # request URLs, for assertions
        self.request_count = 0

    # -- data ---------------------------------------------------------------------------------
    def add(self, record: Any, visible_at: float | None = None,
            sort_key: tuple[float, str] | None = None) -> Any:
        """Add one activity; `sort_key` places a deliberately malformed record in the feed."""
        entry = _Entry(sort_key or (epoch(record["created_at"]), record["id"]),
                       visible_at if visible_at is not None else 0.0, record)
        with self.lock:
            bisect.insort(self._entries, entry)
            bisect.insort(self._by_type.setdefault(entry.record.get("type"), []), entry)
            self._by_id[entry.key[1]] = entry
        return record

    def extend(self, records: Iterable[dict[str, Any]], visible_at: float | None = None) -> None:
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
        rng = self.factory.rng
        records = [self.factory.make(rng.uniform(start, end), kind) for _ in range(count)]
        self.extend(records, visible_at)
        return records

    def all_records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e.record for e in self._entries]

    # -- HTTP semantics -----------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        with self.lock:
            self.request_count += 1
            number = self.request_count
        fault = self.faults(number) if self.faults else None
        if fault:
            return Response(0, {}, b"", fault)
        parts = urlsplit(target)
        key = headers.get("x-api-key") or ""
        if not key and headers.get("authorization", "").startswith("Bearer "):
            key = headers["authorization"][7:]
        if not self._known(key):
            return _error(401, "authentication_error", "The API key provided is invalid or has been revoked.")
        now = self.clock()
        with self.lock:
            self._recent = [t for t in self._recent if t > now - 60]
            limited = len(self._recent) >= self.rate_limit
            if not limited:
                self._recent.append(now)
            remaining = max(0, self.rate_limit - len(self._recent))
            reset = (self._recent[0] + 60) if self._recent else now
        rl = {"anthropic-ratelimit-requests-limit": str(self.rate_limit),
              "anthropic-ratelimit-requests-remaining": str(remaining),
              "anthropic-ratelimit-requests-reset": format_rfc3339(reset)}
        if limited:
            resp = _error(429, "rate_limit_error",
                          f"Rate limit of {self.rate_limit} requests per minute per parent organization exceeded.",
                          **{"retry-after": str(max(1, math.ceil(reset - now)))}, **rl)
            return resp
        if method != "GET" or parts.path != ACTIVITIES_PATH:
            resp = _error(404, "not_found_error", f"Not found: {method} {parts.path}", **rl)
        elif not self._scoped(key):
            resp = _error(403, "permission_error",
                          "Missing required scopes. Got: ['read:compliance_user_data'] "
                          "Needed: ['read:compliance_activities']", **rl)
        else:
            resp = self._list(parse_qsl(parts.query, keep_blank_values=True), now)
            resp.headers.update(rl)
            if resp.status == 200:
                resp.headers["anthropic-organization-id"] = self.factory.orgs[0][1]
        if self.side_effects:
            self._record_access(key, target, resp, now)
        with self.lock:
            self.requests.append(unquote(target))
        return resp

    def _known(self, key: str) -> bool:
        if self.accept_any_key:
            return key.startswith(("sk-ant-api01-", "sk-ant-admin01-")) and len(key) > 20
        return key in self.keys

    def _scoped(self, key: str) -> bool:
        return self.accept_any_key or "read:compliance_activities" in self.keys.get(key, set())

    def _record_access(self, key: str, target: str, resp: Response, now: float) -> None:
        rng = random.Random(key)
        record = {
            "id": self.factory.new_id(), "created_at": format_rfc3339(now),
            "organization_id": None, "organization_uuid": None,
            "actor": {"type": "api_actor", "api_key_id": _tagged(rng, "apikey_01", 22),
                      "ip_address": "127.0.0.1", "user_agent": "anthropic-compliance-input"},
            "type": "compliance_api_accessed", "request_id": resp.headers.get("request-id"),
            "request_method": "GET", "status_code": resp.status,
            "url": "https://api.anthropic.com" + target, "request_body": None,
        }
        self.add(record, visible_at=now + self.accessed_delay)

    def _list(self, pairs: list[tuple[str, str]], now: float) -> Response:
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
            if e.visible_at > now:
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
        return Response(200, {"content-type": "application/json", "request-id": rid}, orjson.dumps(body))

    @staticmethod
    def _walk(pool: list[_Entry], cursor: _Entry | None, bounds: dict[str, float], up: bool) -> Iterator[_Entry]:
        """Entries strictly beyond the cursor in the walking direction, narrowed by time bounds."""
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: FeedModel

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        resp = self.server.model.handle("GET", self.path, {k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        if resp.fault:
            return self._fault(resp.fault)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    def _fault(self, fault: str) -> None:
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            return
        if fault == "slow":
            time.sleep(3)
        if fault in ("429", "500", "502", "503", "529", "slow"):
            status = 503 if fault == "slow" else int(fault)
            kind = {"429": "rate_limit_error", "529": "overloaded_error"}.get(fault, "api_error")
            resp = _error(status, kind, "Simulated fault", **({"retry-after": "1"} if fault == "429" else {}))
            body, ctype = resp.body, "application/json"
        elif fault in ("html", "html502"):
            status = 200 if fault == "html" else 502
            body, ctype = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html"
        elif fault == "badjson":
            status, body, ctype = 200, b'{"data": [{"id": "activity_', "application/json"
        elif fault == "noenvelope":
            status, body, ctype = 200, b'{"items": []}', "application/json"
        elif fault == "truncate":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "4096")
            self.end_headers()
            self.wfile.write(b'{"data":[{"id":"activity_01')
            self.wfile.flush()
            self.close_connection = True
            return
        else:
            raise ValueError(f"unknown fault {fault!r}")
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SimServer:
    """The model on 127.0.0.1 in a background thread."""

    def __init__(self, model: FeedModel, port: int = 0, host: str = "127.0.0.1",
                 tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate, key) files to serve https, for testing certificate checks."""
        self.model = model
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.model = model  # type: ignore[attr-defined]
        self.scheme = "http"
        if tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="simulator", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> "SimServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
