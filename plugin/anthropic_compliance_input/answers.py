"""What an Activity Feed answer means: a page, a fault worth retrying (described in a string),
or a final error raised as ApiError with the exit code and the fix. The body is read with stdlib
json and checked before anything trusts it: an HTML page from a proxy, a cut-off body or a
malformed envelope must never move the cursor."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from . import NAME
from .errors import Exit, PluginError


@dataclass
class Page:
    data: list[Any]
    has_more: bool
    last_id: str | None
    request_id: str | None
    headers: dict[str, str] = field(default_factory=dict)
    api_time: float | None = None  # the API's clock (its Date header) when it answered
    received: float = 0.0  # the host's clock when the answer arrived
    nonfinite: bool = False  # a number in the body overflowed a float (1e400)

    @property
    def skew(self) -> float | None:
        """Host clock minus the API's. Date has whole seconds: take the middle of that second."""
        return None if self.api_time is None else self.received - (self.api_time + 0.5)


class ApiError(PluginError):
    """A failure the API reported. Under --follow even its 400 is retried (a filter the API
    refuses today may be fixed in the config or accepted tomorrow); a local 65 is not."""


def _error_details(content: bytes) -> tuple[str, str]:
    try:
        err = json.loads(content).get("error") or {}
        return str(err.get("type") or "error"), str(err.get("message") or "").strip()
    except Exception:
        return "error", content[:200].decode("utf-8", "replace").strip().replace("\n", " ")


def read_answer(resp: requests.Response, content: bytes, retries: str) -> Page | str:
    """`retries`: how many were spent, for the message of a final 5xx."""
    request_id = resp.headers.get("request-id")
    rid = f" (request-id {request_id})" if request_id else ""
    status = resp.status_code
    if status != 200:
        kind, message = _error_details(content)
        text = f"API {status} {kind}: {message}{rid}"
        if status == 401:
            raise ApiError(Exit.NOPERM, text, f"the key is invalid or revoked; see `{NAME} key status`")
        if status == 403:
            hint = ("check [api] organization_ids: the key does not cover that organization"
                    if "organization" in message.lower()
                    else "the key needs the read:compliance_activities scope (Admin keys: created "
                         "after the Compliance API was enabled)")
            raise ApiError(Exit.NOPERM, text, hint)
        if status == 400:
            raise ApiError(Exit.DATAERR, text,
                           "check the filters in [api] (activity_types, organization_ids, actor_ids)")
        if status == 404:
            raise ApiError(Exit.CONFIG, text, "check [api] base_url")
        if status == 429:
            raise ApiError(Exit.TEMPFAIL, f"rate limited past the retry budget: {text}",
                           "the 600 requests/min budget is shared by every key of the organization; "
                           "the cursor did not move", "rate_limited")
        if resp.headers.get("x-should-retry", "").lower() == "false":
            raise ApiError(Exit.UNAVAILABLE, f"{text}; the API said not to retry it",
                           "the cursor did not move past the pages delivered; try again later")
        raise ApiError(Exit.UNAVAILABLE, f"{text} after {retries}",
                       "the cursor did not move past the pages delivered; try again later")
    ctype = resp.headers.get("content-type", "")
    if "json" not in ctype:
        return f"HTTP 200 with content-type {ctype or 'none'!r}, not JSON (a proxy page?){rid}"
    overflow: list[str] = []
    try:
        # stdlib json, not orjson: orjson turns integers beyond 64 bits into floats
        body = json.loads(content, parse_constant=_no_constants, parse_float=_float_noting(overflow))
    except (ValueError, RecursionError) as exc:
        return f"HTTP 200 with a body that is not valid JSON ({exc}){rid}"
    problem = _envelope_problem(body)
    if problem:
        return f"HTTP 200 with a malformed envelope: {problem}{rid}"
    headers = {k.lower(): v for k, v in resp.headers.items()
               if k.lower().startswith("anthropic-") or k.lower() == "request-id"}
    return Page(body["data"], body["has_more"], body.get("last_id"), request_id, headers,
                _api_time(resp.headers.get("date")), time.time(), bool(overflow))


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _float_noting(overflow: list[str]) -> Any:
    """float() that notes 1e400 and the like: json turns them into inf, which no writer can emit
    as JSON; the page step then dead-letters the record that holds one."""
    def parse(text: str) -> float:
        value = float(text)
        if value in (math.inf, -math.inf):
            overflow.append(text)
        return value
    return parse


def _api_time(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _envelope_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "top level is not an object"
    if not isinstance(body.get("data"), list):
        return "'data' is missing or not a list"
    if not isinstance(body.get("has_more"), bool):
        return "'has_more' is missing or not a boolean"
    for name in ("first_id", "last_id"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"'{name}' is not a string or null"
    if body["has_more"] and not body.get("last_id"):
        return "'has_more' is true but 'last_id' is empty"
    return None
