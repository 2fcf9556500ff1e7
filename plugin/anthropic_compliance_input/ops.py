"""`check` and `status`: what an on-call engineer runs first.

`check` walks the run's own path (config -> key -> state dir -> one API request) and says, per
step, ok or the problem and the fix. `status` reads the state file only (no lock, no network),
so it is safe to run from cron, a timer or a health check while a collector runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import Exit, PluginError
from .timeutil import epoch, format_rfc3339, parse_duration


def _line(step: str, ok: bool, text: str) -> None:
    print(f"{step:<7} {'ok  ' if ok else 'FAIL'}  {text}", flush=True)


def check(config_arg: str | None) -> int:
    from .config import load_config

    try:
        loaded = load_config(config_arg)
    except PluginError as exc:
        _line("config", False, str(exc))
        return exc.code
    cfg = loaded.config
    _line("config", True, f"{loaded.describe()}: valid; base_url {cfg.api.base_url}, output {cfg.output.mode}")
    failures: list[int] = []

    from .keys import find_key, mask, shape_warning

    key = None
    try:
        found = find_key(cfg)
        key = found.key
        warning = shape_warning(key)
        _line("key", warning is None, f"{found.source}: {mask(key)}" + (f" — {warning}" if warning else ""))
        if warning:
            failures.append(Exit.CONFIG)
    except PluginError as exc:
        _line("key", False, str(exc))
        failures.append(exc.code)

    state_dir = Path(cfg.state.path).parent
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = state_dir / f".check-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink()
        from .state import StateStore

        state = StateStore(cfg.state.path).load()
        where = f"cursor at {state.high_water}" if state else "no state yet (the next run is a first run)"
        _line("state", True, f"{state_dir} is writable (probe file written and removed); {where}")
    except OSError as exc:
        _line("state", False, f"{state_dir} is not writable: {exc.strerror} — make it writable by the user the "
                              "shipper runs as (root for Fluent Bit and syslog-ng, vector for Vector)")
        failures.append(Exit.CONFIG)
    except PluginError as exc:
        _line("state", False, str(exc))
        failures.append(exc.code)

    if key is None:
        _line("api", False, "skipped: no key")
    else:
        from .api import Client, Query

        client = Client(cfg.api.model_copy(update={"max_retries": 2}), key)
        started = time.monotonic()
        try:
            page = client.get_page(Query(limit=1, order="desc"))
            h = page.headers
            rate = (f"rate limit {h.get('anthropic-ratelimit-requests-remaining', '?')}/"
                    f"{h.get('anthropic-ratelimit-requests-limit', '?')} requests left, resets "
                    f"{h.get('anthropic-ratelimit-requests-reset', '?')}")
            org = h.get("anthropic-organization-id")
            newest = page.data[0].get("created_at") if page.data and isinstance(page.data[0], dict) else None
            _line("api", True, f"{cfg.api.base_url} answered 200 in {time.monotonic() - started:.2f}s "
                               f"(request-id {page.request_id}); {rate}"
                               + (f"; organization {org}" if org else "")
                               + (f"; newest activity {newest}" if newest else "; no activities visible yet"))
        except PluginError as exc:
            _line("api", False, str(exc))
            failures.append(exc.code)
        finally:
            client.close()
    return failures[0] if failures else Exit.OK


def status(config_arg: str | None, max_age: str | None, as_json: bool) -> int:
    from .config import load_config
    from .state import StateStore

    limit = None
    if max_age:
        try:
            limit = parse_duration(max_age).total_seconds()
        except ValueError as exc:
            raise PluginError(Exit.USAGE, f"--max-age: {exc}") from None
    cfg = load_config(config_arg).config
    state = StateStore(cfg.state.path).load()
    now = time.time()
    doc: dict[str, Any] = {"state_path": cfg.state.path, "now": format_rfc3339(int(now))}
    if state is None:
        doc.update(status="never_run", healthy=False if limit else None)
    else:
        s = state.stats
        doc.update(
            origin=state.origin, high_water=state.high_water, last_success=s.last_success,
            newest_activity=s.newest_activity, emitted=s.emitted, rejected=s.rejected, pages=s.pages,
            retries=s.retries, runs=s.runs, last_request_id=s.last_request_id, last_error=s.last_error,
            last_error_at=s.last_error_at, rejected_file=str(StateStore(cfg.state.path).rejected_path),
        )
        for name, field in (("lag_seconds", state.high_water), ("last_success_age_seconds", s.last_success),
                            ("newest_activity_age_seconds", s.newest_activity)):
            doc[name] = round(now - epoch(field), 1) if field else None
        stale = []
        if limit is not None:
            for name in ("last_success", "newest_activity"):
                age = doc[f"{name}_age_seconds"]
                if age is None or age > limit:
                    stale.append(name)
        doc["status"] = "stale" if stale else ("ok" if s.last_success else "never_succeeded")
        doc["healthy"] = (not stale and bool(s.last_success)) if limit is not None else None
        if stale:
            doc["stale"] = stale
    if as_json:
        print(json.dumps(doc))
    else:
        for k, v in doc.items():
            if v is not None:
                print(f"{k:<28} {v}")
    if doc["status"] == "never_run" or (limit is not None and not doc["healthy"]):
        return Exit.STALE
    return Exit.OK
