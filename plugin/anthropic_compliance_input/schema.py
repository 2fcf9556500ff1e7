"""The Anthropic.Activity schema (pydantic v2), used to check records, never to rewrite them.

Records are emitted exactly as the API returned them; the schema only decides whether a record
goes to stdout or to the dead-letter file. Extra fields and unknown types are normal. A page is
validated in one pydantic call (the cost of a per-record loop shows at 50,000 activities/s).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, StrictStr, StringConstraints, TypeAdapter, ValidationError, with_config
from typing_extensions import NotRequired, TypedDict  # pydantic needs these below Python 3.12

from .timeutil import RFC3339_PATTERN, parse_rfc3339


def _real_date(value: str) -> str:
    """The pattern has the shape checked; this catches 2026-02-30 (fromisoformat is the fast path)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        parse_rfc3339(value)  # lower-case t/z, or Python 3.10
    return value


Timestamp = Annotated[str, StringConstraints(strict=True, pattern=RFC3339_PATTERN), AfterValidator(_real_date)]
OptionalStr = NotRequired[StrictStr | None]


@with_config(ConfigDict(extra="allow"))
class Actor(TypedDict):
    type: StrictStr
    email_address: OptionalStr
    user_id: OptionalStr
    ip_address: OptionalStr
    user_agent: OptionalStr
    api_key_id: OptionalStr
    unauthenticated_email_address: OptionalStr


@with_config(ConfigDict(extra="allow"))
class Activity(TypedDict):
    id: StrictStr
    created_at: Timestamp
    actor: Actor
    type: StrictStr
    organization_id: OptionalStr
    organization_uuid: OptionalStr


@lru_cache(maxsize=1)
def _page_adapter() -> TypeAdapter[list[Activity]]:
    return TypeAdapter(list[Activity])  # built on first use: a poll with nothing new skips it


def page_problems(records: list[Any]) -> dict[int, str]:
    """Why each failing record fails Anthropic.Activity, by index; {} for a clean page."""
    if not records:
        return {}
    try:
        _page_adapter().validate_python(records)
    except ValidationError as exc:
        reasons: dict[int, list[str]] = {}
        for err in exc.errors():
            index, *where = err["loc"]
            field = ".".join(str(p) for p in where) or "record"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch":
                msg = "not an RFC 3339 timestamp"
            reasons.setdefault(int(index), []).append(f"{field}: {msg}")
        return {i: "; ".join(r) for i, r in reasons.items()}
    return {}


def problem(record: Any) -> str | None:
    """Why one record fails Anthropic.Activity; None when it is valid."""
    return page_problems([record]).get(0)
