"""The collection cycle, top to bottom: window -> pages -> plan -> sink -> state commit.

Each poll reads, oldest first, the window [high_water - overlap, now - settle_delay), where `now`
is the API's clock (its Date header), never a host clock that disagrees: nothing younger than
the settle delay (the API indexes within a minute), an overlap re-read behind the cursor for
stragglers, ids already delivered skipped. A second, small pass re-reads the late activity types
(Access Transparency can arrive two business days late) over late_lookback; an optional third
re-reads every type over a longer window, to prove nothing was missed. One clock per poll
for every window and every prune; no query reaches below what the seen set covers.
After every page: dead letters synced, lines written, then one state transaction — so a kill at
any instant repeats at most the page in flight and never skips one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from . import NAME
from .api import ApiError, Client, Page, Query
from .config import Config
from .errors import Exit, PluginError
from .formats import shaper
from .logs import log
from .plan import Window, dedupe_key, plan_page
from .sinks import RejectFile, Sink, encode
from .state import Counters, State, StateStore
from .stop import Stopper
from .timeutil import SKEW_TOLERANCE, epoch, format_rfc3339, skew_text


Progress = Callable[[Counters, float, float], None]  # (this poll so far, cursor, window end)


class Collector:
    def __init__(self, cfg: Config, client: Client, store: StateStore, state: State,
                 sink: Sink, stopper: Stopper, progress: Progress | None = None) -> None:
        self.cfg = cfg
        self.client = client
        self.store = store
        self.state = state
        self.sink = sink
        self.stopper = stopper
        self.progress = progress
        self.rejects = RejectFile(store.rejected_path)
        self.shape = shaper(cfg.output)  # None: the record as received
        skew = state.clock_skew  # logged by an earlier run (or before a reload): not again unless it changes
        self.skew_logged: float | None = skew if skew is not None and abs(skew) > SKEW_TOLERANCE else None
        self.counters = Counters()
        self.limit = 0.0  # the API's now - settle, as its latest answer showed it
        self.now = 0.0  # the API's now at the poll's start, as its answers showed it
        self._folded = self._request_counts()

    def poll(self) -> tuple[Counters, str | None]:
        """One poll: the main window, the late-type reconciliation, then (when it is on and due)
        the deep reconciliation. Returns what it did and why it ended early (a signal or
        max-runtime), if it did."""
        c, api, state = self.cfg.collect, self.cfg.api, self.state
        counters = self.counters = Counters()  # kept on the collector: a poll cut short still counts
        requests, retries = self.client.counters.requests, self.client.counters.retries
        now = time.time() - (state.clock_skew or 0.0)  # the API's clock, as last measured
        if max(state.high_water, *self._dates()) > now + SKEW_TOLERANCE:
            now = self._measure_clock()  # the state looks ahead: ask the API's clock before acting
        until = self.limit = now - c.settle_delay_seconds
        self.now = now  # lowered by the first answer if the skew measured last time is stale
        self._repair_cursor(now, until)
        self._refuse_dates_ahead(now)
        state.last_attempt = now
        self.fold_requests(state.totals)
        self.store.commit(state, prune=False)  # a state that cannot be written fails here, before any line
        floors = self._late_floors()  # before the main window's commits prune by them
        filters = dict(organization_ids=tuple(api.organization_ids), actor_ids=tuple(api.actor_ids))

        lower = max(state.high_water - c.overlap_seconds, state.seen_floor, state.origin)
        stopped = None
        if lower < until:
            main = Query(limit=api.page_size, gte=format_rfc3339(lower), lt=format_rfc3339(until),
                         activity_types=tuple(api.activity_types),
                         exclude_activity_types=tuple(api.exclude_activity_types), **filters)
            stopped = self._read(main, counters, advance=True)
            if stopped is None:  # all of [lower, until) is delivered: the cursor may move to its end
                state.high_water = max(state.high_water, min(epoch(main.lt or ""), self.limit))

        now, until = self.now, self.limit  # the API's clock as its answers showed it: floors follow it
        lookback = c.late_lookback.total_seconds()
        groups: dict[float, list[str]] = {}  # types share a query when they share a lower bound
        for kind, floor in floors.items():
            groups.setdefault(max(now - lookback, floor, state.origin), []).append(kind)
        for late_lower, kinds in sorted(groups.items()):
            if stopped is None and late_lower < until:
                reconcile = Query(limit=api.page_size, gte=format_rfc3339(late_lower), lt=format_rfc3339(until),
                                  activity_types=tuple(kinds), **filters)
                stopped = self._reconcile(reconcile, counters)
        if stopped is None:
            stopped = self._deep(filters, counters)
        now = self.now  # lowered by any answer since

        counters.requests = self.client.counters.requests - requests
        counters.retries = self.client.counters.retries - retries
        self.fold_requests(state.totals)
        if stopped is None:
            state.last_success = now
            state.runs += 1
            state.last_error_reason = None
        state.seen_floor = max(state.seen_floor, state.high_water - c.overlap_seconds)
        state.late_floors = {kind: max(floor, now - lookback) for kind, floor in floors.items()}
        deep = c.deep_reconcile_lookback.total_seconds()
        state.deep_floor = max(deep_floor, now - deep) if (deep_floor := self._deep_floor()) is not None else None
        self.store.commit(state)
        return counters, stopped

    def _deep_floor(self) -> float | None:
        """How far back the seen set holds every id, for deep reconciliation: from where it was
        turned on (the ids older than that were pruned), growing into its lookback."""
        if not self.cfg.collect.deep_reconcile_interval:
            return None
        return self.state.deep_floor if self.state.deep_floor is not None else self.state.seen_floor

    def _deep(self, filters: dict[str, Any], counters: Counters) -> str | None:
        """Every deep_reconcile_interval, re-read ALL types over deep_reconcile_lookback: whatever
        the regular windows missed (an activity indexed later than the overlap) is delivered now,
        and said, so an operator can prove the trail complete."""
        c, api, state, now, until = self.cfg.collect, self.cfg.api, self.state, self.now, self.limit
        floor = self._deep_floor()
        if floor is None or (state.last_deep is not None and now - state.last_deep < c.deep_reconcile_interval.total_seconds()):
            return None
        lower = max(now - c.deep_reconcile_lookback.total_seconds(), floor, state.origin)
        if lower >= until:  # nothing covered yet: no claim about an empty window
            return None
        before = counters.emitted + counters.rejected
        query = Query(limit=api.page_size, gte=format_rfc3339(lower), lt=format_rfc3339(until),
                      activity_types=tuple(api.activity_types),
                      exclude_activity_types=tuple(api.exclude_activity_types), **filters)
        stopped = self._read(query, counters, advance=False)
        if stopped is not None:
            return stopped
        found = counters.emitted + counters.rejected - before
        (log.warning if found else log.info)(
            "deep reconciliation of [%s, %s): %d activities the regular windows had missed, delivered now",
            format_rfc3339(lower), format_rfc3339(until), found, extra={"fields": {"deep_found": found}})
        state.last_deep = now
        return None

    def _request_counts(self) -> tuple[int, int, int]:
        c = self.client.counters
        return c.requests, c.retries, c.errors

    def fold_requests(self, totals: Counters) -> None:
        """Add the requests made since the last fold to `totals` (the state's, before a commit;
        the last committed state's, when a poll failed): the metrics count every request once."""
        now, before = self._request_counts(), self._folded
        totals.requests += now[0] - before[0]
        totals.retries += now[1] - before[1]
        totals.errors += now[2] - before[2]
        self._folded = now

    def _late_floors(self) -> dict[str, float]:
        """The late types this poll reconciles, each with how far back the seen set covers it.
        A type newly made late is covered only from the seen floor: its older ids were pruned
        as ordinary ones, and reading below that would deliver them again."""
        api, state = self.cfg.api, self.state
        kinds = [t for t in self.cfg.collect.late_activity_types
                 if (not api.activity_types or t in api.activity_types) and t not in api.exclude_activity_types]
        state.late_floors = {t: state.late_floors.get(t, state.seen_floor) for t in kinds}
        return dict(state.late_floors)

    def _measure_clock(self) -> float:
        """The API's now, from one `limit=1` request (its Date header)."""
        with self.stopper.waiting():
            page = self.client.get_page(Query(limit=1, order="desc"))
        self._clock(page)
        return time.time() - (self.state.clock_skew or 0.0)

    def _dates(self) -> list[float]:
        s = self.state
        return [t for t in (s.origin, s.seen_floor, s.deep_floor, s.last_deep, s.last_success, s.newest_activity,
                            *s.late_floors.values()) if t is not None]

    def _refuse_dates_ahead(self, now: float) -> None:
        """An origin, floor or date more than a day ahead of both clocks (a hand edit) would stop
        collection for good while `status` looked healthy. (`--since` may be a day ahead of the
        host's clock, which may be ahead of the API's: that only waits.)"""
        latest = max(self._dates())
        if latest > max(now, time.time()) + 86400 + SKEW_TOLERANCE:
            raise PluginError(Exit.DATAERR, f"state {self.store.path} has a date more than a day ahead of the "
                              f"API's clock ({format_rfc3339(now)}): {format_rfc3339(latest)}",
                              f"see `{NAME} state show`; collection stops rather than wait for that date: "
                              f"`{NAME} state reset --since <last good time>` starts again from there")

    def _repair_cursor(self, now: float, until: float) -> None:
        """A cursor ahead of the API's clock was written by a host clock ahead of it (releases
        before 0.2 trusted the host). Nothing after the newest delivered activity is sure to
        have been read: go back there, accepting repeats rather than a gap."""
        state = self.state
        if state.high_water <= now + SKEW_TOLERANCE:  # within the settle delay it only waits
            return
        back = min(until, state.newest_activity if state.newest_activity is not None else until)
        log.warning("the cursor (%s) is ahead of the API's clock (%s): reading again from %s; some "
                    "activities may be delivered twice", format_rfc3339(state.high_water),
                    format_rfc3339(until + self.cfg.collect.settle_delay_seconds), format_rfc3339(back))
        floor = back - self.cfg.collect.overlap_seconds  # the same clock wrote every floor and date
        state.high_water, state.origin, state.seen_floor = back, min(state.origin, back), min(state.seen_floor, floor)
        state.late_floors = {kind: min(f, floor) for kind, f in state.late_floors.items()}
        state.deep_floor = None if state.deep_floor is None else min(state.deep_floor, floor)
        for name in ("last_success", "last_deep", "newest_activity"):
            if (value := getattr(state, name)) is not None:
                setattr(state, name, min(value, now))

    def _reconcile(self, query: Query, counters: Counters) -> str | None:
        """Re-read the late types. These two are documented outside the activity-type enum, so an
        API that refuses one as a filter (400) must not stop collection: try each type alone and
        skip, loudly, only what is refused."""
        try:
            return self._read(query, counters, advance=False)
        except ApiError as exc:
            if exc.code != Exit.DATAERR:
                raise
            if len(query.activity_types) == 1:
                log.warning("late-activity reconciliation for %s skipped: %s", query.activity_types[0], exc.message)
                return None
            for kind in query.activity_types:
                stopped = self._reconcile(replace(query, activity_types=(kind,), after_id=None), counters)
                if stopped:
                    return stopped
            return None

    def _read(self, query: Query, counters: Counters, advance: bool) -> str | None:
        """Page through one window; None when it was read to the end, else why it stopped."""
        window = Window(epoch(query.gte or ""), epoch(query.lt or ""))
        position = None  # the seen-set stamp reached in this window, page after page
        while True:
            if self.stopper.requested:
                return self.stopper.reason
            with self.stopper.waiting():
                page = self.client.get_page(query)
            self._clock(page)
            self._owner(page)
            position = self._deliver(page, window, position, counters, advance)
            if advance and self.progress:
                self.progress(counters, self.state.high_water, window.lt)
            if self.stopper.requested:
                return self.stopper.reason
            if not page.has_more:
                return None
            if not page.last_id or page.last_id == query.after_id:
                raise ApiError(Exit.UNAVAILABLE, f"the API said has_more but gave no new cursor "
                               f"(last_id {page.last_id!r}, request-id {page.request_id})",
                               "the cursor did not move; this run stops rather than skip the rest of the window")
            query = replace(query, after_id=page.last_id)

    def _owner(self, page: Page) -> None:
        """One state, one organization: a second tenant pointed at the first one's state (a
        copied config that kept its [state] path) would start from that cursor and skip its own
        history, so the organization the API names is kept and checked."""
        org = page.headers.get("anthropic-organization-id")
        if not org or org == self.state.organization:
            return
        if self.state.organization is None:
            self.state.organization = org  # committed with the page
            return
        raise PluginError(Exit.CONFIG, f"state {self.store.path} belongs to organization {self.state.organization}; "
                          f"this key reads organization {org}",
                          "give each tenant its own [state] path (e.g. /var/lib/anthropic-compliance-input/TENANT.db); "
                          "nothing was collected and the state is unchanged", "config")

    def _clock(self, page: Page) -> None:
        """Measure the host's clock against the API's: the window may not pass the API's now."""
        skew = page.skew
        if skew is None or page.api_time is None:
            return
        self.state.clock_skew = skew if abs(skew) > 1.0 else 0.0  # within a second: the host's is finer
        self.limit = min(self.limit, page.api_time - self.cfg.collect.settle_delay_seconds)
        self.now = min(self.now, page.api_time + 0.5)
        if abs(skew) > SKEW_TOLERANCE and (self.skew_logged is None or abs(skew - self.skew_logged) > SKEW_TOLERANCE):
            log.warning("the host clock is %s; windows follow the API's clock (fix NTP)", skew_text(skew))
            self.skew_logged = skew

    def _deliver(self, page: Page, window: Window, position: float | None, counters: Counters,
                 advance: bool) -> float:
        """Plan the page, carry the plan out (dead letters, then lines), commit what was done.
        Returns the window position the next page continues from."""
        state, c = self.state, self.cfg.collect
        keys = [dedupe_key(r) for r in page.data]
        plan = plan_page(page.data, keys, self.store.known(keys) if keys else set(), window,
                         page.nonfinite, position)
        if plan.outside:
            key, created = plan.outside[0]
            log.warning("API anomaly: %d record(s) dated outside the window asked for [%s, %s), e.g. %s at %s "
                        "(request-id %s); delivered once, the cursor not moved by them", len(plan.outside),
                        format_rfc3339(window.gte), format_rfc3339(window.lt), key, _date(created), page.request_id)
        for record, reason in plan.rejects:
            log.warning("rejected activity %s (%s); written to %s", dedupe_key(record), reason,
                        self.store.rejected_path)
        self.rejects.write(plan.rejects)
        records, shape = plan.records, self.shape
        if self.sink.wants_lines:
            items: Any = map(encode, records if shape is None else map(shape, records))
        else:
            items = plan.timed if shape is None else [(shape(r), c, t) for r, c, t in plan.timed]
        with self.stopper.writing():
            written = self.sink.write(items, lambda: self.stopper.requested)
        done = plan.outcome(None if written == len(records) else written)

        counters.duplicates += plan.duplicates
        counters.emitted += done.emitted
        counters.rejected += done.rejected
        counters.pages += 1
        state.totals.add(Counters(done.emitted, done.rejected, plan.duplicates, 1))
        state.last_request_id = page.request_id or state.last_request_id
        if done.newest is not None and (state.newest_activity is None or done.newest > state.newest_activity):
            state.newest_activity = done.newest
        moved = False
        if advance and done.high_water is not None and min(done.high_water, self.limit) > state.high_water:
            state.high_water = min(done.high_water, self.limit)
            state.seen_floor = max(state.seen_floor, state.high_water - c.overlap_seconds)
            moved = True
        if moved or done.emitted or done.rejected:  # empty and all-repeat pages change nothing
            started = time.perf_counter()
            kept = done.seen_above(state.keep_floor, state.late_floors)
            self.fold_requests(state.totals)
            self.store.commit(state, kept)
            log.debug("page committed: %d records, %d seen ids stored, %.1f ms",
                      len(page.data), len(kept), (time.perf_counter() - started) * 1000)
        return plan.position


def _date(moment: float) -> str:
    """A record's date for a log line, even one no RFC 3339 writer takes (year 10000)."""
    try:
        return format_rfc3339(moment)
    except (ValueError, OverflowError, OSError):
        return f"{moment:.0f} (epoch seconds)"
