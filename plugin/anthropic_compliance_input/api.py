"""The Activity Feed client: one request, checked, retried with urllib3's Retry policy.

Retries live in two places, both driven by urllib3 `Retry` (no hand-made backoff):
the transport adapter retries 429/5xx/529, resets and timeouts (honouring `retry-after` and
`x-should-retry: false`); faults only visible in the body (truncated, not JSON, an HTML page
from a proxy, a bad envelope) are retried by `get_page` with the same policy object.
A failed request never returns a page, so it can never move the cursor.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import LocationValueError, MaxRetryError, ProtocolError, ResponseError
from urllib3.util.retry import Retry

from . import NAME, __version__
from .answers import ApiError, Page, read_answer
from .config import ApiConfig
from .errors import Exit
from .logs import log
from .state import Counters

API_VERSION = "2023-06-01"
ACTIVITIES_PATH = "/v1/compliance/activities"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
BODY_CHUNK = 1 << 20


class _Retry(Retry):
    """urllib3 Retry that also obeys the API's `x-should-retry: false` and counts retries."""

    client: "Client | None" = None

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[override]
        if response is not None and response.headers.get("x-should-retry", "").lower() == "false":
            raise MaxRetryError(_pool, url or "", ResponseError("x-should-retry: false"))
        cause = f"HTTP {response.status}" if response is not None else f"{type(error).__name__}: {error}"
        if self.client is not None:
            self.client.failing = (_failure_code(response), cause)
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        new.client = self.client
        if self.client is not None:
            self.client.counters.retries += 1
            if _pool is not None:  # urllib3 sends the retry itself; get_page counts its own resends
                self.client.counters.requests += 1
        quiet = self.client is not None and self.client.quiet
        log.log(logging.DEBUG if quiet else logging.WARNING, "request failed (%s); retry %d of %s", cause,
                len(new.history), self._budget())
        return new

    def _budget(self) -> str:
        return str(self.total + len(self.history)) if isinstance(self.total, int) else "?"


@dataclass
class Query:
    """One Activity Feed query; `params()` renders it the way the API documents."""

    limit: int
    order: str = "asc"
    gte: str | None = None
    lt: str | None = None
    after_id: str | None = None
    activity_types: tuple[str, ...] = ()
    exclude_activity_types: tuple[str, ...] = ()
    organization_ids: tuple[str, ...] = ()
    actor_ids: tuple[str, ...] = ()

    def params(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = [("limit", str(self.limit)), ("order", self.order)]
        if self.gte:
            out.append(("created_at.gte", self.gte))
        if self.lt:
            out.append(("created_at.lt", self.lt))
        if self.after_id:
            out.append(("after_id", self.after_id))
        for name, values in (
            ("activity_types[]", self.activity_types),
            ("exclude_activity_types[]", self.exclude_activity_types),
            ("organization_ids[]", self.organization_ids),
            ("actor_ids[]", self.actor_ids),
        ):
            out.extend((name, v) for v in values)
        return out


class Client:
    def __init__(self, api: ApiConfig, key: str, counters: Counters | None = None, quiet: bool = False) -> None:
        """`counters`: shared by every client of a run, so a reload keeps the run's totals.
        `quiet`: retries at debug level (--follow has logged the episode they belong to)."""
        self.api = api
        self.quiet = quiet
        self.counters = counters if counters is not None else Counters()
        self.failing: tuple[Exit, str] | None = None  # a failure being retried right now: code, cause
        self.last_request_id: str | None = None
        self.rate_limit_remaining: int | None = None
        self.pacing = False  # below the floor: logged once per episode
        self.session = requests.Session()
        self.session.headers.update({
            "x-api-key": key,
            "anthropic-version": API_VERSION,
            "User-Agent": f"{NAME}/{__version__}",
            "Accept": "application/json",
        })
        # Passed with each request: a session-level path would lose to $REQUESTS_CA_BUNDLE.
        self.verify: str | bool = api.ca_bundle or True
        adapter = HTTPAdapter(max_retries=self._retry())
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def _retry(self) -> _Retry:
        retry = _Retry(
            total=self.api.max_retries,
            backoff_factor=self.api.retry_backoff_seconds,
            backoff_max=60,
            backoff_jitter=self.api.retry_backoff_seconds,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            retry_after_max=300,
            raise_on_status=False,
        )
        retry.client = self
        return retry

    def close(self) -> None:
        self.session.close()

    def get_page(self, query: Query) -> Page:
        try:
            return self._get_page(query)
        except ApiError:
            self.counters.errors += 1
            raise

    def _get_page(self, query: Query) -> Page:
        url = f"{self.api.base_url}{ACTIVITIES_PATH}?{urlencode(query.params())}"
        retry = self._retry()
        while True:
            fault = None
            try:
                self.counters.requests += 1
                resp = self.session.get(url, timeout=self.api.timeout_seconds, verify=self.verify, stream=True)
            except (requests.exceptions.InvalidURL, LocationValueError) as exc:  # config.py checks; belt and braces
                raise ApiError(Exit.CONFIG, f"[api] base_url {self.api.base_url}: {exc}", "fix [api] base_url") from None
            except requests.exceptions.SSLError as exc:
                raise ApiError(Exit.UNAVAILABLE, f"TLS error talking to {self.api.base_url}: {exc}",
                               "check the certificate chain, or set [api] ca_bundle") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                raise ApiError(
                    Exit.UNAVAILABLE,
                    f"API unreachable at {self.api.base_url} after {_retries(self.api.max_retries)}: "
                    f"{_root_cause(exc)}",
                    "check network, proxy (HTTPS_PROXY) and [api] base_url; the cursor did not move past the pages delivered",
                ) from None
            try:
                # 1 MB reads: a 5,000-activity page in 3 reads, not requests' 250 of 10 KB
                body = b"".join(resp.iter_content(BODY_CHUNK))
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    requests.exceptions.ContentDecodingError) as exc:
                fault = f"response body cut off ({type(exc).__name__}: {_root_cause(exc)})"
            finally:
                resp.close()
            if fault is None:
                outcome = self._check(resp, body)
                if isinstance(outcome, Page):
                    self.failing = None
                    self._pace(outcome)
                    return outcome
                fault = outcome
            self.failing = (Exit.UNAVAILABLE, fault)
            try:
                retry = retry.increment("GET", url, error=ProtocolError(fault))
            except MaxRetryError:
                raise ApiError(Exit.UNAVAILABLE, f"API response unusable after retries: {fault}",
                               "the cursor did not move past the pages delivered; try again later") from None
            retry.sleep()

    def _check(self, resp: requests.Response, content: bytes) -> Page | str:
        """A Page, a retryable fault description, or an ApiError raised for final answers."""
        self.last_request_id = resp.headers.get("request-id") or self.last_request_id
        return read_answer(resp, content, _retries(self.api.max_retries))

    def _pace(self, page: Page) -> None:
        """Slow down before a 429: the budget is shared by every key of the organization, so
        below [api] min_rate_remaining of it the requests are spread over what is left of the
        window, leaving the rest to the organization's other collectors."""
        headers = page.headers
        try:
            remaining = int(headers["anthropic-ratelimit-requests-remaining"])
            self.rate_limit_remaining = remaining
            limit = int(headers["anthropic-ratelimit-requests-limit"])
        except (KeyError, ValueError):
            return
        floor = math.ceil(limit * self.api.min_rate_remaining)  # 0: pace only when nothing is left
        if remaining > floor:
            self.pacing = False
            return
        wait = 1.0
        reset = headers.get("anthropic-ratelimit-requests-reset")
        if reset:
            from .timeutil import epoch
            try:
                now = page.api_time if page.api_time is not None else time.time()  # the reset is API time
                wait = max(0.0, epoch(reset) - now) / (remaining + 1)
            except ValueError:
                pass
        wait = min(wait, 60.0)
        if wait > 0:
            (log.debug if self.pacing else log.info)(
                "rate-limit budget low (%d of %d left, floor %d: min_rate_remaining); pacing requests, %.1fs apart",
                remaining, limit, floor, wait)
            self.pacing = True
            time.sleep(wait)


def _retries(count: int) -> str:
    return "1 retry" if count == 1 else f"{count} retries"


def _failure_code(response: Any) -> Exit:
    return Exit.TEMPFAIL if response is not None and response.status == 429 else Exit.UNAVAILABLE


def probe(api: ApiConfig, key: str) -> Page:
    """One `limit=1` request with a short retry budget: what `check` and `key set --verify` ask."""
    client = Client(api.model_copy(update={"max_retries": 2}), key)
    try:
        return client.get_page(Query(limit=1, order="desc"))
    finally:
        client.close()


def _root_cause(exc: BaseException) -> str:
    """requests wraps the reason in 'Max retries exceeded … (Caused by X(...))': keep X's name
    and the system's reason ('[Errno 111] Connection refused') when there is one."""
    text = str(exc)
    if "Caused by " not in text:
        return text
    cause = text.split("Caused by ")[-1]
    name = cause.split("(", 1)[0]
    reason = re.search(r"\[Errno -?\d+\] [^'\")]+|timed out|Name or service not known", cause)
    return f"{name}: {reason.group(0)}" if reason else cause.rstrip(")")
