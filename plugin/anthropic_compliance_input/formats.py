"""The shape of what is written: the record as received (`raw`, the contract), or the same record
as an ECS document (ecs.py) or an OCSF event (ocsf.py). Validation, dedupe, the dead-letter file
and the cursor all work on the raw record; the format is applied only when a record is written.
"""

from __future__ import annotations

from typing import Any, Callable

from .config import OutputConfig
from .logs import log
from .sinks import encode

Shape = Callable[[Any], Any]


def shaper(out: OutputConfig) -> Shape | None:
    """None for raw (nothing to do: the hot path stays as it was)."""
    if out.format == "raw":
        return None
    if out.format == "ecs":
        from .ecs import to_ecs as convert
    else:
        from .ocsf import to_ocsf as convert
    keep, fmt = out.keep_original, out.format

    def shape(record: Any) -> Any:
        try:
            return convert(record, encode(record) if keep else None)
        except Exception as exc:  # a record no mapping foresaw: still delivered, marked, nothing lost
            log.warning("activity %s: the %s mapping failed (%s: %s); written with the record as its original",
                        record.get("id") if isinstance(record, dict) else "?", fmt, type(exc).__name__, exc)
            return failed(fmt, record, f"{type(exc).__name__}: {exc}")

    return shape


def failed(fmt: str, record: Any, why: str) -> dict[str, Any]:
    """What Elastic's pipeline makes of a record it cannot process (event.kind pipeline_error), and
    an OCSF base event carrying the record as raw data."""
    original = encode(record).decode("utf-8", "replace").rstrip("\n")
    if fmt == "ecs":
        return {"event": {"kind": "pipeline_error", "original": original}, "error": {"message": [why]},
                "tags": ["preserve_original_event"]}
    return {"class_uid": 0, "class_name": "Base Event", "category_uid": 0, "category_name": "Uncategorized",
            "activity_id": 99, "activity_name": "Other", "type_uid": 99, "severity_id": 0, "status_id": 0,
            "time": 0, "metadata": {"version": "1.5.0", "product": {"name": "Claude", "vendor_name": "Anthropic"}},
            "raw_data": original, "status_detail": why}
