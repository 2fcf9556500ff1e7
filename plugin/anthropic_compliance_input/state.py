"""The durable cursor: an SQLite database (stdlib sqlite3, WAL), one transaction per page.

Why SQLite: the seen ids of a same-timestamp cluster can run to hundreds of thousands, and a
JSON file rewritten on every page made each commit cost O(window) in time and memory. Here a
commit inserts the page's ids and deletes what no window can return again: O(page). A crash at
any instant leaves the last committed transaction. A state we cannot read is never overwritten:
the operator decides (state reset), because guessing could skip or repeat days of audit events.

The seen set is one table of (id, stamp, activity type); `seen_floor` and, per late activity type,
`late_floors` record how far back it is complete, so a query never reaches below what it covers
(a widened window, or a type newly made late, takes effect as the set grows into it).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterable

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

from . import NAME
from .errors import Exit, PluginError, disk_error
from .lock import hold, private_dir

if TYPE_CHECKING:
    from .config import Config

VERSION = 2
# A hand-edited state is checked like a config: times between 1970 and 2200, counts not negative.
Time = Annotated[float, Field(ge=0, le=7258118400)]
Count = Annotated[int, Field(ge=0)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, stamp REAL NOT NULL, type TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_stamp ON seen (stamp);
"""
SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 500  # ids per lookup: well under SQLite's smallest variable limit (999)


@with_config(ConfigDict(extra="forbid", allow_inf_nan=False))
@dataclass
class Counters:
    """What a poll did; summed per run and, in the state, over the collector's life."""

    emitted: Count = 0
    rejected: Count = 0
    duplicates: Count = 0
    pages: Count = 0
    requests: Count = 0
    retries: Count = 0
    errors: Count = 0  # requests that failed for good (after their retries)

    def add(self, other: "Counters") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@with_config(ConfigDict(extra="forbid", allow_inf_nan=False))
@dataclass
class State:
    """Everything but the seen ids. Times are epoch seconds; they are formatted only for people."""

    origin: Time  # where collection started (first run or state reset)
    high_water: Time  # everything before high_water - overlap has been delivered
    seen_floor: Time  # the seen set holds every id delivered with a stamp >= seen_floor
    late_floors: dict[str, Time] = field(default_factory=dict)  # ... and each late type's ids above its floor
    deep_floor: Time | None = None  # deep reconciliation on: ... and every id above this floor
    last_deep: Time | None = None  # API clock at the start of the last deep reconciliation that completed
    totals: Counters = field(default_factory=Counters)
    runs: Count = 0
    last_success: Time | None = None  # API clock at the start of the last poll that completed
    last_attempt: Time | None = None
    newest_activity: Time | None = None  # created_at of the newest activity delivered
    clock_skew: Annotated[float, Field(ge=-1e9, le=1e9)] | None = None  # host clock minus the API's
    last_request_id: str | None = None
    last_error: str | None = None
    last_error_at: Time | None = None
    last_error_reason: str | None = None
    organization: str | None = None  # the API's anthropic-organization-id for the key that wrote it

    @property
    def keep_floor(self) -> float:
        """Every id stamped at or above this stays in the seen set, whatever its type."""
        return self.seen_floor if self.deep_floor is None else min(self.seen_floor, self.deep_floor)

    @classmethod
    def starting_at(cls, origin: float) -> "State":
        """Nothing delivered yet: the cursor and both floors at the origin."""
        return cls(origin=origin, high_water=origin, seen_floor=origin)


_STATE = TypeAdapter(State)


class StateLost(PluginError):
    """The state file vanished under a running collector: only an operator can say from where."""


class StateStore:
    def __init__(self, path: str | Path, windows: tuple[float, float] = (300.0, 72 * 3600.0),
                 late_types: tuple[str, ...] = ("anthropic_access", "cmek_preserve")) -> None:
        """`windows`: the configured (overlap, late_lookback) seconds and `late_types`, which say
        how far back a version 1 state's seen sets were complete when it is migrated."""
        self.path = Path(os.path.realpath(path))  # one lock per file, whatever link names it
        self.windows = windows
        self.late_types = late_types
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rejected_path = self.path.with_name(self.path.name + ".rejected.jsonl")
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._json_each = True

    @classmethod
    def configured(cls, cfg: "Config") -> "StateStore":
        """The store a config names, with the windows a version 1 state is migrated by."""
        c = cfg.collect
        return cls(cfg.state.path, (c.overlap_seconds, c.late_lookback.total_seconds()), tuple(c.late_activity_types))

    # -- the lock ---------------------------------------------------------------------------
    def lock(self) -> None:
        """Exclusive for the life of the process (see lock.py)."""
        self._lock_fd = hold(self.lock_path)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the kernel releases the flock with the last descriptor
            self._lock_fd = None

    # -- reading ----------------------------------------------------------------------------
    def load(self, readonly: bool = False) -> State | None:
        """The state, or None before the first run. A version 1 JSON file is migrated, once,
        with a backup beside it (read-only callers see it without migrating)."""
        legacy = self._legacy_json()
        if legacy is not None:
            from .migrate import migrate, parse_v1

            state, seen = parse_v1(legacy[1], legacy[0], self.windows, self.late_types, self.unreadable)
            if readonly:
                return self._consistent(state)
            migrate(self, legacy[0], state, seen)
        if not self.path.exists():
            return None
        try:
            meta = dict(self._conn(readonly).execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            self._drop()
            if _is_corrupt(exc):
                raise self.unreadable(str(exc)) from None
            raise disk_error(_as_oserror(exc), f"cannot read the state {self.path}") from None
        if "state" not in meta or "version" not in meta:
            raise self.unreadable("no cursor in it")
        if meta["version"] != str(VERSION):
            raise self.unreadable(f"unknown state version {meta['version']!r} (this release reads {VERSION})")
        try:
            state = _STATE.validate_json(meta["state"])
        except ValidationError as exc:
            raise self.unreadable(_first_problem(exc)) from None
        return self._consistent(state)

    def _consistent(self, state: State) -> State:
        """Fields that parse but contradict each other (a hand edit, a restored mix of files): a
        seen floor past the cursor would skip what lies between for good. Dates ahead of the
        API's clock are the collector's to judge: only it knows that clock."""
        if state.seen_floor > state.high_water:
            raise self.unreadable("seen_floor is later than high_water")
        return state

    def known(self, keys: list[str]) -> set[str]:
        """Which of these ids the seen set already holds: one query for the page (SQLite's
        json_each), or chunks of parameters where an old SQLite has no JSON functions."""
        db = self._conn()
        if self._json_each:
            try:
                return {r[0] for r in db.execute("SELECT s.id FROM json_each(?) AS j JOIN seen AS s ON s.id = j.value",
                                                 (json.dumps(keys),))}
            except sqlite3.OperationalError:
                self._json_each = False
        found = set()
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in db.execute(f"SELECT id FROM seen WHERE id IN ({marks})", chunk))
        return found

    def counts(self, late_types: Iterable[str] = ()) -> tuple[int, int]:
        """(seen ids, of which late types) for `state show` and `status`."""
        legacy = self._legacy_json()
        if legacy is not None:  # not migrated yet: count what the version 1 file holds
            from .migrate import parse_v1

            _, seen = parse_v1(legacy[1], legacy[0], self.windows, self.late_types, self.unreadable)
            return len(seen), sum(1 for _, _, kind in seen if kind is not None)
        if not self.path.exists():
            return 0, 0
        try:
            kinds = list(late_types)
            row = self._conn(readonly=True).execute(
                f"SELECT count(*), coalesce(sum(type IN ({','.join('?' * len(kinds))})), 0) FROM seen", kinds).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self.unreadable(str(exc)) from None
        return int(row[0]), int(row[1])

    # -- writing ----------------------------------------------------------------------------
    def commit(self, state: State, seen: Iterable[tuple[str, float, str | None]] = (), *,
               prune: bool = True) -> None:
        """One transaction: new seen ids in, what is below the floors out, the state row."""
        try:
            private_dir(self.path.parent)
            db = self._conn()
            with db:
                db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?)", seen)
                if prune:
                    kinds, keep = list(state.late_floors), state.keep_floor
                    db.execute(f"DELETE FROM seen WHERE stamp < ? AND (type IS NULL OR type NOT IN "
                               f"({','.join('?' * len(kinds))}))", [keep, *kinds])
                    for kind, floor in state.late_floors.items():
                        db.execute("DELETE FROM seen WHERE type = ? AND stamp < ? AND stamp < ?", (kind, floor, keep))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?), ('state', ?)",
                           (str(VERSION), _STATE.dump_json(state).decode()))
        except sqlite3.DatabaseError as exc:
            self._drop()
            if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                raise PluginError(Exit.TEMPFAIL, f"the state {self.path} is locked by another process: {exc}",
                                  "something else holds an SQLite lock on it (a backup, a sqlite3 shell); "
                                  "nothing was committed", "lock") from None
            raise disk_error(_as_oserror(exc), f"cannot write the state {self.path}") from None
        except OSError as exc:
            raise disk_error(exc, f"cannot write the state {self.path}") from None
        if not self.path.exists():  # deleted under us: commits would go to an unlinked file
            self._drop()
            raise StateLost(Exit.DATAERR, f"the state {self.path} was deleted while the collector ran",
                              f"restore it from a backup, or `{NAME} state reset --since <last good time>`")

    def delete(self) -> bool:
        self._drop()
        existed = False
        for suffix in ("", "-wal", "-shm"):
            try:
                self.path.with_name(self.path.name + suffix).unlink()
                existed = existed or suffix == ""
            except FileNotFoundError:
                pass
        return existed

    # -- internals --------------------------------------------------------------------------
    def _conn(self, readonly: bool = False) -> sqlite3.Connection:
        if self._db is None:
            if readonly:
                from urllib.parse import quote

                db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True,
                                     isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 5000")
                self._db = db
                return db
            old = os.umask(0o077)  # the database, its WAL and its index are private like the key's state
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 5000")
                if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                    raise sqlite3.OperationalError("cannot switch the state database to WAL")
                db.execute("PRAGMA synchronous = FULL")
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not tables:
                    db.executescript(_SCHEMA)
                elif tables != {"meta", "seen"}:  # a damaged state: never rebuild it silently
                    db.close()
                    raise self.unreadable(f"its tables are {sorted(tables)}, not meta and seen")
            finally:
                os.umask(old)
            db.isolation_level = ""  # `with db:` opens and commits one transaction
            self._db = db
        return self._db

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def unreadable(self, why: str) -> PluginError:
        return PluginError(
            Exit.DATAERR, f"state {self.path} is unreadable: {why}",
            f"it was left untouched; move it aside and run `{NAME} state reset --since <last good time>` "
            "(re-delivers from then), or restore it from a backup")

    def _legacy_json(self) -> tuple[Path, bytes] | None:
        """A version 1 state: the configured path itself, or its .json twin for a .db path.
        Anything there that is not an SQLite database is read as one (and refused with 65 if
        it is not), never silently taken for "no state yet"."""
        candidates = [self.path]
        if self.path.suffix == ".db" and not self.path.exists():
            candidates.append(self.path.with_suffix(".json"))
        for path in candidates:
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise disk_error(exc, f"cannot read the state {path}") from None
            if not stat.S_ISREG(info.st_mode):  # a FIFO would block the open forever
                raise PluginError(Exit.CONFIG, f"state {path} is not a regular file",
                                  "point [state] path at a file (the plugin creates it)")
            try:
                with open(path, "rb") as fh:
                    head = fh.read(len(SQLITE_MAGIC))
                    if not head or head == SQLITE_MAGIC:  # empty, or the database: read no further
                        continue
                    raw = head + fh.read()
            except OSError as exc:
                raise disk_error(exc, f"cannot read the state {path}") from None
            return path, raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM from an editor
        return None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "state"
    return f"{where}: {err['msg']}"


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "no such table" in text


def _as_oserror(exc: sqlite3.DatabaseError) -> OSError:
    text = str(exc)
    if "full" in text.lower():
        return OSError(errno.ENOSPC, text)
    if "readonly" in text.lower() or "read-only" in text.lower():
        return OSError(errno.EROFS, text)
    return OSError(errno.EIO, text)
