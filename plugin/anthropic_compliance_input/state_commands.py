"""`state show` and `state reset`: the cursor as JSON, and how an operator moves it. `show`
opens the state read-only (safe beside a running collector); `reset` takes the lock."""

from __future__ import annotations

import json
from dataclasses import asdict

from .config import load_config
from .errors import Exit, PluginError
from .state import VERSION, State, StateStore
from .status import iso
from .timeutil import format_rfc3339, since_arg, spoken_duration


def show(config: str | None) -> int:
    """The state as JSON, with counts instead of the seen ids."""
    cfg = load_config(config).config
    store = StateStore.configured(cfg)
    state = store.load(readonly=True)
    if state is None:
        print(f"no state at {cfg.state.path}: the next run is a first run")
        return Exit.OK
    seen, late = store.counts(state.late_floors or cfg.collect.late_activity_types)
    doc = asdict(state)
    for name in ("origin", "high_water", "seen_floor", "deep_floor", "last_deep", "last_success", "last_attempt",
                 "newest_activity", "last_error_at"):
        doc[name] = iso(doc[name])
    doc["late_floors"] = {kind: iso(floor) for kind, floor in state.late_floors.items()}
    print(json.dumps({"version": VERSION, "path": cfg.state.path, **doc, "seen": seen, "late_seen": late}, indent=2))
    return Exit.OK


def reset(config: str | None, since: str | None, yes: bool) -> int:
    if bool(since) == bool(yes):
        raise PluginError(Exit.USAGE, "state reset needs either --since WHEN (re-deliver from then) or --yes "
                          "(forget the cursor; the next run starts at initial_lookback), not both")
    origin = since_arg(since) if since else None
    cfg = load_config(config).config
    store = StateStore.configured(cfg)
    store.lock()
    try:
        if origin is not None:
            state = State.starting_at(origin)
            store.delete()  # whatever was there, unreadable or not, is what the operator resets
            store.commit(state)
            print(f"state reset: the next run delivers everything from {format_rfc3339(origin)}")
        else:
            existed = store.delete()
            print(f"state {'deleted' if existed else 'was already absent'}: the next run starts "
                  f"{spoken_duration(cfg.collect.initial_lookback.total_seconds())} back")
    finally:
        store.close()
    return Exit.OK

