"""`check`: the doctor an on-call engineer runs first.

It walks the run's own path (config -> key -> state dir -> one API request) and says, per step,
ok or the problem and the fix, one line each.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .errors import Exit, PluginError
from .timeutil import format_rfc3339


def _line(step: str, ok: bool, text: str) -> None:
    from .logs import redact

    print(f"{step:<7} {'ok  ' if ok else 'FAIL'}  {redact(text)}", flush=True)


def _state_step(cfg: Any, state_dir: Path) -> str:
    """Writable for real (a probe file, not mode bits), and changing nothing: a missing
    directory is reported, not created (run creates it), probing where run would create it."""
    existing = next(p for p in (state_dir, *state_dir.parents) if p.exists())
    if not existing.is_dir():
        raise OSError(20, f"{existing} is not a directory")
    probe = existing / f".check-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"probe")
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink()
    if existing != state_dir:
        return (f"{state_dir} does not exist yet; the first run creates it (mode 0700) in {existing}, "
                "which is writable (probe file written and removed)")
    from .state import StateStore

    store = StateStore.configured(cfg)
    for path in (store.path, *(store.path.with_name(store.path.name + x) for x in ("-wal", "-shm"))):
        if path.exists() and not os.access(path, os.W_OK):
            raise OSError(13, f"{path} is not writable (the database and its -wal and -shm files must be)")
    state = store.load(readonly=True)
    where = f"cursor at {format_rfc3339(state.high_water)}" if state else "no state yet (the next run is a first run)"
    return f"{state_dir} is writable (probe file written and removed); {where}"


def check(config_arg: str | None) -> int:
    from .config import load_config

    try:
        loaded = load_config(config_arg)
    except PluginError as exc:
        _line("config", False, str(exc))
        return exc.code
    cfg = loaded.config
    _line("config", True, f"{loaded.describe()}: valid; base_url {cfg.api.base_url}, output {cfg.output.mode}"
          + ("" if cfg.output.format == "raw" else f" ({cfg.output.format})"))
    failures: list[int] = []

    from .keys import find_key, mask, shape_warning

    key, warning = None, None
    try:
        found = find_key(cfg)
        key = found.key
        warning = shape_warning(key)
        # a key of an unknown shape is only a warning here: prefixes change, and the api step
        # below is the judge (it fails the key if the API refuses it)
        _line("key", True, f"{found.source}: {mask(key)}" + (f" — warning: {warning}; the api step decides"
                                                           if warning else ""))
    except PluginError as exc:
        _line("key", False, str(exc))
        failures.append(exc.code)

    state_dir = Path(cfg.state.path).parent
    try:
        _line("state", True, _state_step(cfg, state_dir))
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
        from .api import probe
        from .timeutil import SKEW_TOLERANCE, skew_text

        started = time.monotonic()
        try:
            page = probe(cfg.api, key)
            h = page.headers
            rate = (f"rate limit {h.get('anthropic-ratelimit-requests-remaining', '?')}/"
                    f"{h.get('anthropic-ratelimit-requests-limit', '?')} requests left, resets "
                    f"{h.get('anthropic-ratelimit-requests-reset', '?')}")
            org = h.get("anthropic-organization-id")
            newest = page.data[0].get("created_at") if page.data and isinstance(page.data[0], dict) else None
            skew = page.skew
            clock = ("; API clock unknown (no Date header)" if skew is None else
                     f"; host clock {skew_text(skew)} (fix NTP; collection follows the API's clock)"
                     if abs(skew) > SKEW_TOLERANCE else "; host clock agrees with the API's")
            _line("api", True, f"{cfg.api.base_url} answered 200 in {time.monotonic() - started:.2f}s "
                               f"(request-id {page.request_id}); {rate}"
                               + (f"; organization {org}" if org else "")
                               + (f"; newest activity {newest}" if newest else "; no activities visible yet") + clock)
        except PluginError as exc:
            _line("api", False, str(exc) + (f" (the key step warned: {warning})" if warning and exc.code == Exit.NOPERM
                                            else ""))
            failures.append(exc.code)
    return failures[0] if failures else Exit.OK
