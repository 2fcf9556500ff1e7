"""The page step, pure: from (what is known, one page) to what to do with it.

No I/O here, so every rule that decides gaps and duplicates has unit tests of its own:
- an id already seen, or repeated inside the page, is skipped;
- a record that fails the schema (or holds a non-finite number) goes to the dead-letter file;
- a record's seen-set stamp is its created_at when that is in order (the feed is sorted by it)
  and inside the window asked for; a record dated earlier than one served before it, without a
  date, or dated outside the window (2099, 2001) is filed at the window's end, so it is not
  pruned while the API may serve it again: it is delivered once;
- the cursor may move only to the oldest created_at among the last TAIL records carried out: in
  an ordered feed everything before it has been read, and one record (or a few) dated later than
  its place cannot carry the cursor past pages not yet read. (The oldest of the whole page would
  be proof against any number of them, but then every page's ids must be stored and deleted
  again: 2.4 µs an activity. And the cursor only stops mid-window when a run is cut short.)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Collection, NamedTuple, Sequence

from . import schema
from .sinks import encode
from .timeutil import fast_epoch


@dataclass(frozen=True)
class Window:
    """The [gte, lt) the query asked for, in epoch seconds."""

    gte: float
    lt: float


HASHED = "sha256:"  # the prefix of a content-hash key
TAIL = 16  # the records at a page's end that must agree before the cursor moves


class Step(NamedTuple):  # built as a plain tuple in the hot loop (a NamedTuple call costs 3x)
    key: str  # the id, or a content hash for a record without one
    record: Any
    reason: str | None  # None: emit; otherwise why it is dead-lettered
    stamp: float  # where the seen set files it: in order, clamped into the window
    kind: str | None  # the activity type: late types stay in the seen set for reconciliation
    created: float | None  # created_at when inside the window: it may move the cursor


@dataclass
class Outcome:
    """The part of a plan that was carried out, folded: what to commit."""

    emitted: int = 0
    rejected: int = 0
    seen: list[tuple[str, float, str | None]] = field(default_factory=list)  # (id, stamp, type)
    high_water: float | None = None  # the oldest in-window created_at of the last TAIL carried out
    newest: float | None = None

    def seen_above(self, floor: float, late_floors: dict[str, float]) -> list[tuple[str, float, str | None]]:
        """The seen entries worth storing: an id below the seen floor and, for a late type, below
        that type's floor can never be read again (the rule the store prunes by)."""
        return [e for e in self.seen if e[1] >= floor or (e[2] in late_floors and e[1] >= late_floors[e[2]])]


@dataclass
class Plan:
    steps: list[Step]  # (key, record, reason, stamp, kind, created) tuples, in page order
    duplicates: int
    position: float  # the last stamp: where the next page of the same window starts
    outside: list[tuple[str, float]] = field(default_factory=list)  # (key, created_at) dated outside the window

    @property
    def records(self) -> list[Any]:
        """What to emit, in order."""
        return [s[1] for s in self.steps if s[2] is None]

    @property
    def timed(self) -> list[tuple[Any, float | None, Any]]:
        """What to emit, each with its created_at in epoch seconds when the plan read it and its
        created_at as written (for the forward output's event time, exact to the nanosecond and
        the same whatever format the record is written in; a page's dates are parsed once)."""
        return [(s[1], s[5], s[1].get("created_at") if type(s[1]) is dict else None)
                for s in self.steps if s[2] is None]

    @property
    def rejects(self) -> list[tuple[Any, str]]:
        return [(s[1], s[2]) for s in self.steps if s[2] is not None]

    def outcome(self, emitted: int | None = None) -> Outcome:
        """The commit for this plan when only the first `emitted` records reached the sink
        (a stop mid-page). Dead letters are written first, so all of them count; the cursor
        moves no further than the records carried out."""
        limit = len(self.steps) if emitted is None else emitted
        done = rejected = 0
        seen: list[tuple[str, float, str | None]] = []
        newest = None
        dates: list[float] = []  # in-window created_at of what was carried out, in order
        cut = False
        for key, _record, reason, stamp, kind, created in self.steps:  # unpacked: the hot loop
            if reason is None:
                if done >= limit:
                    cut = True
                    continue
                done += 1
                if created is not None and (newest is None or created > newest):
                    newest = created
            else:
                rejected += 1
            seen.append((key, stamp, kind))
            if not cut and created is not None:
                dates.append(created)
        return Outcome(done, rejected, seen, min(dates[-TAIL:]) if dates else None, newest)


def dedupe_key(record: Any) -> str:
    """The activity id; for a record without one (or with one that is not valid Unicode text,
    such as a lone surrogate), a content hash, so that it is dead-lettered once."""
    key = record.get("id") if type(record) is dict else None
    if type(key) is str and (key.isascii() or _is_text(key)):
        return key
    return HASHED + hashlib.sha256(encode(record)).hexdigest()


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def plan_page(records: Sequence[Any], keys: Sequence[str], known: Collection[str], window: Window,
              nonfinite: bool = False, position: float | None = None) -> Plan:
    """`keys`: dedupe_key of each record; `known`: those the seen set already holds.
    `nonfinite`: the page's JSON held a number too large for a float (1e400), which no JSON
    writer can emit faithfully. `position`: the previous page's `Plan.position` in this window."""
    fresh_keys: list[str] = []
    fresh: list[Any] = []
    taken: set[str] = set()
    for key, record in zip(keys, records):
        if key not in known and key not in taken:  # seen before, or twice in this page
            taken.add(key)
            fresh_keys.append(key)
            fresh.append(record)
    duplicates = len(records) - len(fresh)
    problems = schema.page_problems(fresh)  # overlap re-reads cost nothing
    gte, lt = window.gte, window.lt
    at = gte if position is None else position
    steps: list[Any] = []
    outside: list[tuple[str, float]] = []  # an API anomaly: the caller logs it
    append = steps.append
    for index, (key, record) in enumerate(zip(fresh_keys, fresh)):
        reason = problems.get(index) if problems else None
        if reason is None and key.startswith(HASHED):  # a str id the schema took, but not text
            reason = "id: not valid Unicode text"
        created: float | None = None
        if reason is None:
            try:
                created = fast_epoch(record["created_at"])
            except ValueError:
                reason = "created_at: out of range"
            if nonfinite and reason is None and _has_nonfinite(record):
                reason = "a number too large for JSON tools (it would be written as Infinity)"
        elif type(record) is dict and type(record.get("created_at")) is str:
            try:
                created = fast_epoch(record["created_at"])
            except ValueError:
                created = None
        if created is not None and gte <= created < lt:
            if created >= at:  # in order
                at = created
                append((key, record, reason, created, _kind(record), created))
            else:  # dated before a record served ahead of it: its place is unknown, file it late
                append((key, record, reason, lt, _kind(record), created))
        else:  # no date, or one outside the window: filed at the window's end, moving nothing
            append((key, record, reason, lt, _kind(record), None))
            if created is not None:
                outside.append((key, created))
    return Plan(steps, duplicates, at, outside)


def _kind(record: Any) -> str | None:
    kind = record.get("type") if type(record) is dict else None
    return kind if type(kind) is str and (kind.isascii() or _is_text(kind)) else None


def _has_nonfinite(value: Any) -> bool:
    """Iterative: a record may nest deeper than Python's recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float and not math.isfinite(item):
            return True
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False
