"""The collection cycle, top to bottom: window -> pages -> validation -> sink -> state commit.

Each poll reads, oldest first, the window [high_water - overlap, now - settle_delay): nothing
younger than the settle delay (the API indexes within a minute), an overlap re-read behind the
cursor for stragglers, ids already delivered skipped. A second, small pass re-reads the late
activity types (Access Transparency can arrive two business days late) over late_lookback.
After every page: lines written, dead letters synced, then the state committed — so a kill at
any instant repeats at most the page in flight and never skips one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from . import schema
from .api import ApiError, Client, Page, Query
from .config import Config
from .errors import Exit
from .logs import log
from .sinks import RejectFile, Sink, encode
from .state import State, StateStore
from .stop import Stopper
from .timeutil import epoch, fast_epoch, format_rfc3339


@dataclass
class Summary:
    emitted: int = 0
    rejected: int = 0
    duplicates: int = 0
    pages: int = 0
    stopped: str | None = None  # why the poll ended early: a signal or max-runtime

    def add(self, other: "Summary") -> None:
        self.emitted += other.emitted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.pages += other.pages
        self.stopped = other.stopped or self.stopped


def dedupe_key(record: Any) -> str:
    """The activity id; for a record without one, a content hash (so it is dead-lettered once)."""
    key = record.get("id") if type(record) is dict else None
    return key if type(key) is str else "sha256:" + hashlib.sha256(encode(record)).hexdigest()


def _created(record: Any) -> float | None:
    """created_at of a record that failed the schema, if it has a usable one."""
    try:
        return epoch(record["created_at"])
    except (TypeError, KeyError, ValueError):
        return None


class Collector:
    def __init__(self, cfg: Config, client: Client, store: StateStore, state: State,
                 sink: Sink, stopper: Stopper, progress: Callable[[Summary, str | None, str], None] | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.store = store
        self.state = state
        self.sink = sink
        self.stopper = stopper
        self.rejects = RejectFile(store.rejected_path)
        self.late_types = frozenset(cfg.collect.late_activity_types)
        self.progress = progress  # (summary so far, created_at reached, window end) after each page
        self._retries_counted = client.retries[0]

    def poll(self) -> Summary:
        """One poll: the main window, then the late-type reconciliation."""
        c, api, state = self.cfg.collect, self.cfg.api, self.state
        summary = Summary()
        now = time.time()
        until = now - c.settle_delay_seconds
        origin = epoch(state.origin) if state.origin else until
        high = epoch(state.high_water) if state.high_water else origin
        filters = dict(organization_ids=tuple(api.organization_ids), actor_ids=tuple(api.actor_ids))

        lower = max(high - c.overlap_seconds, origin)
        if lower < until:
            main = Query(limit=api.page_size, gte=format_rfc3339(lower), lt=format_rfc3339(until),
                         activity_types=tuple(api.activity_types),
                         exclude_activity_types=tuple(api.exclude_activity_types), **filters)
            if self._read_window(main, summary, advance=True):
                # all of [lower, until) is delivered; never move back (seen was pruned to it).
                # Committed with the poll below: a crash before then only re-reads the overlap.
                state.high_water = format_rfc3339(max(until, epoch(state.high_water or state.origin)))

        late = [t for t in c.late_activity_types
                if (not api.activity_types or t in api.activity_types)
                and t not in api.exclude_activity_types]
        late_lower = max(now - c.late_lookback.total_seconds(), origin)
        if late and not summary.stopped and late_lower < until:
            reconcile = Query(limit=api.page_size, gte=format_rfc3339(late_lower),
                              lt=format_rfc3339(until), activity_types=tuple(late), **filters)
            self._reconcile(reconcile, summary)

        if not summary.stopped:
            state.stats.last_success = format_rfc3339(now)
            state.stats.runs += 1
        self._commit(now)
        return summary

    def _reconcile(self, query: Query, summary: Summary) -> None:
        """Re-read the late types. These two are documented outside the activity-type enum, so an
        API that refuses one as a filter (400) must not stop collection: try each type alone and
        skip, loudly, only what is refused."""
        try:
            self._read_window(query, summary, advance=False)
        except ApiError as exc:
            if exc.code != Exit.DATAERR:
                raise
            if len(query.activity_types) == 1:
                log.warning("late-activity reconciliation for %s skipped: %s", query.activity_types[0], exc.message)
                return
            for kind in query.activity_types:
                self._reconcile(replace(query, activity_types=(kind,), after_id=None), summary)

    def _read_window(self, query: Query, summary: Summary, advance: bool) -> bool:
        """Page through one window; True when it was read to the end."""
        while True:
            if self.stopper.requested:
                summary.stopped = self.stopper.reason
                return False
            with self.stopper.waiting():
                page = self.client.get_page(query)
            self._deliver(page, summary, advance)
            if self.progress and advance:
                self.progress(summary, self.state.high_water, query.lt or "")
            if self.stopper.requested:
                summary.stopped = self.stopper.reason
                return False
            if not page.has_more or not page.data or not page.last_id:
                return True
            query = replace(query, after_id=page.last_id)

    def _deliver(self, page: Page, summary: Summary, advance: bool) -> None:
        """Write the page's new records, then commit. The hot loop: 200,000 records a backfill."""
        state, stats, stopper = self.state, self.state.stats, self.stopper
        seen, late_seen, late_types, emit = state.seen, state.late_seen, self.late_types, self.sink.emit
        high = epoch(state.high_water) if state.high_water else None
        newest = epoch(stats.newest_activity) if stats.newest_activity else 0.0
        fresh = [(k, r) for r in page.data if (k := dedupe_key(r)) not in seen and k not in late_seen]
        duplicates, emitted, rejected = len(page.data) - len(fresh), 0, 0
        problems = schema.page_problems([r for _, r in fresh])  # overlap re-reads cost nothing
        for index, (key, record) in enumerate(fresh):
            if key in seen:  # the same id twice in one page
                duplicates += 1
                continue
            reason = problems.get(index)
            if reason is None:
                created: float | None = fast_epoch(record["created_at"])
                emit(record, encode(record))
                emitted += 1
                if created > newest:  # type: ignore[operator]
                    newest, stats.newest_activity = created, record["created_at"]  # type: ignore[assignment]
            else:
                created = _created(record)
                self.rejects.add(record, reason)
                rejected += 1
                log.warning("rejected activity %s (%s); written to %s", key, reason, self.store.rejected_path)
            stamp = created if created is not None else (high or time.time())
            seen[key] = stamp
            if type(record) is dict and record.get("type") in late_types:
                late_seen[key] = stamp
            if advance and created is not None and (high is None or created > high):
                high = created
            if stopper.reason:
                break
        self.sink.flush()
        self.rejects.sync()
        summary.duplicates += duplicates
        summary.emitted += emitted
        summary.rejected += rejected
        stats.emitted += emitted
        stats.rejected += rejected
        summary.pages += 1
        stats.pages += 1
        stats.last_request_id = page.request_id or stats.last_request_id
        moved = advance and high is not None and format_rfc3339(high) != state.high_water
        if moved:
            state.high_water = format_rfc3339(high)  # type: ignore[arg-type]
        if moved or emitted or rejected:
            self._commit(time.time())  # progress is durable page by page; empty pages change nothing

    def _commit(self, now: float) -> None:
        """Prune what no window can return again, then persist."""
        state, c = self.state, self.cfg.collect
        state.stats.retries += self.client.retries[0] - self._retries_counted
        self._retries_counted = self.client.retries[0]
        if state.high_water:
            floor = epoch(state.high_water) - c.overlap_seconds
            state.seen = {k: v for k, v in state.seen.items() if v >= floor}
        late_floor = now - c.late_lookback.total_seconds()
        state.late_seen = {k: v for k, v in state.late_seen.items() if v >= late_floor}
        self.store.save(state)
