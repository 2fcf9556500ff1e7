"""Version 1 states (one JSON file, rewritten on every page) become version 2 (SQLite), once,
with the old file kept beside as `<name>.v1.bak`.

A hand edit that still parses as JSON but not as a state stops here with 65, before it can move
the cursor; the floors claim no more coverage than version 1 kept.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from .errors import PluginError, disk_error
from .logs import log
from .state import _STATE, VERSION, Counters, State, StateStore
from .timeutil import epoch

Seen = list[tuple[str, float, str | None]]
V1_LATE_LOOKBACK = 72 * 3600.0  # release 0.1's default


def parse_v1(raw: bytes, path: Path, windows: tuple[float, float], late_types: tuple[str, ...],
             unreadable: Callable[[str], PluginError]) -> tuple[State, Seen]:
    """Read a version 1 JSON state as strictly as a config: a hand edit that still parses as JSON
    but not as a state stops here with 65, before it can move the cursor."""
    def bad(why: str) -> PluginError:
        return unreadable(why)

    def _finite(value: Any) -> float:
        number = float(value)
        if not math.isfinite(number):
            raise bad(f"a seen id has the stamp {value!r}")
        return number

    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise bad(f"unknown state version {doc.get('version') if isinstance(doc, dict) else None!r}")
        cursor, stats = doc["cursor"], doc.get("stats", {})
        if not isinstance(cursor, dict) or not isinstance(stats, dict):
            raise bad("cursor and stats must be objects")
        seen_doc, late_doc = doc["seen"], doc["late_seen"]
        if not isinstance(seen_doc, dict) or not isinstance(late_doc, dict):
            raise bad("seen and late_seen must be objects")

        def when(value: Any, name: str) -> float | None:
            if value is None:
                return None
            if not isinstance(value, str):
                raise bad(f"{name} must be an RFC 3339 string")
            return epoch(value)

        high = when(cursor.get("high_water"), "high_water")
        origin = when(cursor.get("origin"), "origin")
        if high is None or origin is None:
            raise bad("the cursor has no origin or high_water")
        # v1 kept no activity types; its late ids are filed under a configured late type, so that
        # they stay as long as that type's floor says (dedupe looks at ids, not types)
        late_kind = late_types[0] if late_types else None
        seen = [(k, _finite(v), late_kind if k in late_doc else None) for k, v in seen_doc.items()]
        seen += [(k, _finite(v), late_kind) for k, v in late_doc.items() if k not in seen_doc]
        for key, _, _ in seen:
            key.encode("utf-8")  # a lone surrogate is not an id SQLite can store
        totals = Counters(**{k: int(stats.get(k) or 0) for k in ("emitted", "rejected", "pages", "retries")})
        # v1 pruned the seen set at high_water - overlap on every commit, and the late set at
        # (host clock - its late_lookback, 72 h unless configured lower) when it wrote the file:
        # the floors claim no more than that.
        overlap, late_lookback = windows
        written = path.stat().st_mtime
        late_floor = max(origin, min(high, written - min(late_lookback, V1_LATE_LOOKBACK)))
        state = State(origin=origin, high_water=high, seen_floor=max(origin, min(high, high - overlap)),
                      late_floors={kind: late_floor for kind in late_types},
                      totals=totals, runs=int(stats.get("runs") or 0),
                      last_success=when(stats.get("last_success"), "last_success"),
                      newest_activity=when(stats.get("newest_activity"), "newest_activity"),
                      last_request_id=stats.get("last_request_id"))
        _STATE.validate_python(asdict(state))
        return state, seen
    except PluginError:
        raise
    except (ValueError, KeyError, TypeError, ValidationError, OverflowError, RecursionError,
            UnicodeError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None


def migrate(store: StateStore, source: Path, state: State, seen: Seen) -> None:
    backup = source.with_name(source.name + ".v1.bak")
    temp = store.path.with_name(f".{store.path.name}.migrating")
    try:
        shutil.copy2(source, backup)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{temp}{suffix}").unlink(missing_ok=True)
        tmp_store = StateStore(temp)
        tmp_store.commit(state, seen, prune=False)
        tmp_store.close()  # the last connection to close checkpoints the WAL into the file
        for suffix in ("-wal", "-shm"):
            Path(f"{temp}{suffix}").unlink(missing_ok=True)
        os.replace(temp, store.path)
        if source != store.path:
            source.unlink()
    except (OSError, PluginError) as exc:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{temp}{suffix}").unlink(missing_ok=True)
        if isinstance(exc, PluginError):
            raise
        raise disk_error(exc, f"cannot migrate the state {source} (a copy is in {backup})") from None
    log.warning("state %s migrated from version 1 (JSON) to version %d; the old file is kept as %s",
                store.path, VERSION, backup)
