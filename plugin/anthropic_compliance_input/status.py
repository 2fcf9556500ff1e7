"""`status`: what the cursor says, for people and for health checks.

It opens the state read-only (no lock, no network), so it is safe to run from cron, a timer or
a health check while a collector runs. Times print in ISO 8601.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .config import load_config
from .errors import Exit, PluginError
from .state import StateStore
from .timeutil import SKEW_TOLERANCE, format_rfc3339, parse_duration, skew_text


def iso(value: float | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def status(config: str | None, max_age: str | None, as_json: bool) -> int:
    limit = None
    if max_age:
        try:
            limit = parse_duration(max_age).total_seconds()
        except ValueError as exc:
            raise PluginError(Exit.USAGE, f"--max-age: {exc}") from None
    cfg = load_config(config).config
    store = StateStore.configured(cfg)
    state = store.load(readonly=True)
    host_now = time.time()
    doc: dict[str, Any] = {"state_path": cfg.state.path, "now": format_rfc3339(int(host_now))}
    if state is None:
        doc.update(status="never_run", healthy=False if limit else None, up=0)
    else:
        now = host_now - (state.clock_skew or 0.0)  # ages on the API's clock, like the cursor
        t = state.totals
        doc.update(
            origin=iso(state.origin), high_water=iso(state.high_water), last_success=iso(state.last_success),
            newest_activity=iso(state.newest_activity), emitted=t.emitted, rejected=t.rejected,
            duplicates=t.duplicates, pages=t.pages, requests=t.requests, retries=t.retries, runs=state.runs,
            last_request_id=state.last_request_id, clock_skew_seconds=state.clock_skew,
            last_error=state.last_error, last_error_at=iso(state.last_error_at), error=state.last_error_reason,
            up=0 if state.last_error_reason else 1, rejected_file=str(store.rejected_path),
        )
        for name, value in (("lag_seconds", state.high_water), ("last_success_age_seconds", state.last_success),
                            ("newest_activity_age_seconds", state.newest_activity)):
            doc[name] = round(now - value, 1) if value is not None else None
        problems = []
        if limit is not None:
            for name in ("last_success", "newest_activity"):
                age = doc[f"{name}_age_seconds"]
                if age is None or age > limit:
                    problems.append(name)
        if state.clock_skew is not None and abs(state.clock_skew) > SKEW_TOLERANCE:
            doc["clock_warning"] = f"host clock {skew_text(state.clock_skew)}"
        if doc["lag_seconds"] is not None and doc["lag_seconds"] < -SKEW_TOLERANCE:
            problems.append("cursor_ahead_of_api_clock")  # only a state written by an old release
        if any((doc[f"{n}_age_seconds"] or 0) < -86400 for n in ("last_success", "newest_activity")):
            problems.append("dates_ahead_of_api_clock")  # a hand edit: `run` refuses it (65)
        doc["status"] = "stale" if problems else ("ok" if state.last_success else "never_succeeded")
        doc["healthy"] = (not problems and state.last_success is not None) if limit is not None else None
        if problems:
            doc["stale"] = problems
    if as_json:
        print(json.dumps(doc))
    else:
        for k, v in doc.items():
            if v is not None:
                print(f"{k:<28} {v}")
    if doc["status"] == "never_run" or (limit is not None and not doc["healthy"]):
        return Exit.STALE
    return Exit.OK
