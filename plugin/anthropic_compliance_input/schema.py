"""The Anthropic.Activity schema (pydantic v2), used to check records, never to rewrite them.

Records are emitted exactly as the API returned them; the model only decides whether a record
goes to stdout or to the dead-letter file. Extra fields and unknown types are normal.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr, ValidationError

from .timeutil import parse_rfc3339


def _rfc3339(value: str) -> str:
    parse_rfc3339(value)
    return value


Timestamp = Annotated[StrictStr, AfterValidator(_rfc3339)]


class Actor(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    email_address: StrictStr | None = None
    user_id: StrictStr | None = None
    ip_address: StrictStr | None = None
    user_agent: StrictStr | None = None
    api_key_id: StrictStr | None = None
    unauthenticated_email_address: StrictStr | None = None


class Activity(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictStr
    created_at: Timestamp
    actor: Actor
    type: StrictStr
    organization_id: StrictStr | None = None
    organization_uuid: StrictStr | None = None


def problem(record: Any) -> str | None:
    """Why a record fails Anthropic.Activity, in one line; None when it is valid."""
    if not isinstance(record, dict):
        return f"not a JSON object (got {type(record).__name__})"
    try:
        Activity.model_validate(record)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    return None
