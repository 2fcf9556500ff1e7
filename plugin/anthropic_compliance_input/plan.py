"""The page step, pure: from (what is known, one page) to what to do with it.

No I/O here, so every rule that decides gaps and duplicates has unit tests of its own:
- an id already seen, or repeated inside the page, is skipped;
- a record that fails the schema (or holds a non-finite number) goes to the dead-letter file;
- a record's seen-set stamp is its created_at when that lies inside the window asked for, and
  the window's end otherwise: an API answer dated 2099 or 2001 is still delivered once, but it
  can move neither the cursor nor the prune of the seen set;
- the cursor may move to the newest created_at inside the window, never past a record that was
  not carried out (see `Plan.outcome`).
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


class Step(NamedTuple):  # a tuple: built once per record in the hot loop
    key: str  # the id, or a content hash for a record without one
    record: Any
    reason: str | None  # None: emit; otherwise why it is dead-lettered
    stamp: float  # where the seen set files it (clamped into the window)
    late: bool  # a late activity type: kept for the reconciliation window too
    created: float | None  # created_at when inside the window: it may move the cursor


@dataclass
class Outcome:
    """The part of a plan that was carried out, folded: what to commit."""

    emitted: int = 0
    rejected: int = 0
    seen: list[tuple[str, float, bool]] = field(default_factory=list)
    high_water: float | None = None
    newest: float | None = None

    def seen_above(self, floor: float, late_floor: float) -> list[tuple[str, float, bool]]:
        """The seen entries worth storing: an id below both floors can never be read again
        (the same rule the store prunes by), so it is not written only to be deleted."""
        return [e for e in self.seen if e[1] >= floor or (e[2] and e[1] >= late_floor)]


@dataclass
class Plan:
    steps: list[Step]
    duplicates: int

    @property
    def records(self) -> list[Any]:
        """What to emit, in order."""
        return [s.record for s in self.steps if s.reason is None]

    @property
    def rejects(self) -> list[tuple[Any, str]]:
        return [(s.record, s.reason) for s in self.steps if s.reason is not None]

    def outcome(self, emitted: int | None = None) -> Outcome:
        """The commit for this plan when only the first `emitted` records reached the sink
        (a stop mid-page). Dead letters are written first, so all of them count; the cursor
        stops before the first record that was not emitted."""
        out = Outcome()
        cut = False
        for step in self.steps:
            if step.reason is None:
                if emitted is not None and out.emitted >= emitted:
                    cut = True
                    continue
                out.emitted += 1
                if step.created is not None and (out.newest is None or step.created > out.newest):
                    out.newest = step.created
            else:
                out.rejected += 1
            out.seen.append((step.key, step.stamp, step.late))
            if not cut and step.created is not None and (out.high_water is None or step.created > out.high_water):
                out.high_water = step.created
        return out


def dedupe_key(record: Any) -> str:
    """The activity id; for a record without one, a content hash (so it is dead-lettered once)."""
    key = record.get("id") if type(record) is dict else None
    return key if type(key) is str else "sha256:" + hashlib.sha256(encode(record)).hexdigest()


def plan_page(records: Sequence[Any], keys: Sequence[str], known: Collection[str], window: Window,
              late_types: Collection[str], nonfinite: bool = False) -> Plan:
    """`keys`: dedupe_key of each record; `known`: those the seen set already holds.
    `nonfinite`: the page's JSON held a number too large for a float (1e400), which no JSON
    writer can emit faithfully."""
    fresh = [(k, r) for k, r in zip(keys, records) if k not in known]
    duplicates = len(records) - len(fresh)
    problems = schema.page_problems([r for _, r in fresh])  # overlap re-reads cost nothing
    gte, lt = window.gte, window.lt
    steps: list[Step] = []
    taken: set[str] = set()
    for index, (key, record) in enumerate(fresh):
        if key in taken:  # the same id twice in one page
            duplicates += 1
            continue
        taken.add(key)
        reason = problems.get(index)
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
        inside = created is not None and gte <= created < lt
        steps.append(Step(key, record, reason, created if inside else lt,  # type: ignore[arg-type]
                          type(record) is dict and record.get("type") in late_types,
                          created if inside else None))
    return Plan(steps, duplicates)


def _has_nonfinite(value: Any) -> bool:
    if type(value) is float:
        return not math.isfinite(value)
    if type(value) is dict:
        return any(_has_nonfinite(v) for v in value.values())
    if type(value) is list:
        return any(_has_nonfinite(v) for v in value)
    return False
