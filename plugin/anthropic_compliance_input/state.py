"""The durable cursor: a versioned JSON file, replaced atomically, guarded by an exclusive lock.

A crash at any instant leaves either the old or the new file, never a torn one. A file we cannot
read is never overwritten: the operator decides (state reset), because guessing could skip or
repeat days of audit events.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import NAME
from .errors import Exit, PluginError

VERSION = 1


@dataclass
class Stats:
    emitted: int = 0
    rejected: int = 0
    pages: int = 0
    retries: int = 0
    runs: int = 0
    last_success: str | None = None  # end of the last poll that completed without error
    newest_activity: str | None = None  # created_at of the newest activity delivered
    last_request_id: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None


@dataclass
class State:
    origin: str | None = None  # where collection started (first run or state reset)
    high_water: str | None = None  # everything before high_water - overlap has been delivered
    seen: dict[str, float] = field(default_factory=dict)  # id -> created_at (epoch) inside overlap
    late_seen: dict[str, float] = field(default_factory=dict)  # late types inside late_lookback
    stats: Stats = field(default_factory=Stats)

    @classmethod
    def starting_at(cls, origin: float) -> "State":
        """A first run's state: nothing delivered yet, the cursor at the origin."""
        from .timeutil import format_rfc3339

        stamp = format_rfc3339(origin)
        return cls(origin=stamp, high_water=stamp)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "cursor": {"origin": self.origin, "high_water": self.high_water},
            "seen": self.seen,
            "late_seen": self.late_seen,
            "stats": asdict(self.stats),
        }

    @classmethod
    def from_json(cls, doc: Any) -> "State":
        if not isinstance(doc, dict) or "version" not in doc:
            raise ValueError("not a state document")
        if doc["version"] != VERSION:
            raise ValueError(f"unknown state version {doc['version']!r} (this release reads {VERSION})")
        cursor = doc["cursor"]
        seen, late = doc["seen"], doc["late_seen"]
        if not all(isinstance(d, dict) for d in (cursor, seen, late)):
            raise ValueError("cursor/seen/late_seen must be objects")
        stats = Stats(**{k: v for k, v in doc.get("stats", {}).items() if k in Stats.__dataclass_fields__})
        return cls(cursor.get("origin"), cursor.get("high_water"),
                   {str(k): float(v) for k, v in seen.items()},
                   {str(k): float(v) for k, v in late.items()}, stats)


def _create_private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rejected_path = self.path.with_name(self.path.name + ".rejected.jsonl")
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Exclusive for the life of the process; the kernel drops it if we die, so no stale locks."""
        try:
            _create_private_dir(self.path.parent)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _disk_error(exc, f"cannot create the lock file {self.lock_path}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            try:
                holder = f" (pid {self.lock_path.read_text().strip()})"
            except OSError:
                pass
            raise PluginError(Exit.TEMPFAIL, f"another instance holds the state lock {self.lock_path}{holder}",
                              "only one collector may use a state file; this run exits without touching it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> State | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _disk_error(exc, f"cannot read the state file {self.path}") from None
        try:
            return State.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise PluginError(
                Exit.DATAERR,
                f"state file {self.path} is unreadable: {exc}",
                f"it was left untouched; move it aside and run `{NAME} state reset --since <last good "
                "time>` (re-delivers from then), or restore it from a backup",
            ) from None

    def save(self, state: State) -> None:
        """Write beside, fsync, rename over, fsync the directory; the old file survives any failure."""
        data = json.dumps(state.to_json(), separators=(",", ":")).encode()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            _create_private_dir(self.path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise _disk_error(exc, f"cannot write the state file {self.path}") from None

    def delete(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False


def _disk_error(exc: OSError, what: str) -> PluginError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return PluginError(Exit.TEMPFAIL, f"{what}: {reason}",
                           "free disk space; the previous state is intact and nothing was lost")
    return PluginError(Exit.CONFIG, f"{what}: {reason}",
                       "make [state] path writable by the user the shipper runs as; "
                       "the previous state is intact")
