"""`run`: the loop around the collection cycle — first run, polls, --follow, SIGHUP reload,
rollback after a failed poll, the error `status` shows, the progress display, the summary line.

The cycle itself (one poll) is in collect.py; this module decides what happens between polls.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from . import NAME
from .api import ApiError, Client
from .collect import Collector
from .config import Config, load_config
from .episodes import Episodes
from .errors import Exit, Interrupted, PluginError
from .keys import find_key
from . import metrics
from .logs import log, reopen, use_config_target
from .metrics import Health
from .progress import Progress
from .sinks import Sink, make_sink
from .state import Counters, State, StateLost, StateStore
from .stop import Stopper
from .timeutil import format_rfc3339, since_arg


def run(config: str | None, follow: bool = False, since: str | None = None, max_runtime: float | None = None,
        stdout_closed: bool = False, fmt: str | None = None) -> int:
    started = time.time()
    origin = since_arg(since) if since else None  # from the start, however long the first attempt waits
    stopper = Stopper()
    stopper.install(max_runtime)
    run = Run(config, follow, since, origin, stdout_closed, started, stopper, fmt)
    try:
        return run.follow() if follow else run.attempt()
    finally:
        stopper.disarm()
        if run.summary:
            run.print_summary()


class Run:
    """One `run`: a plain run is one attempt; --follow repeats attempts until it is stopped.

    An attempt reads the config and the key, opens the sink and the state, and polls (under
    --follow, every interval until something fails). Whatever fails is noted in the metrics
    and, when the state is at hand, for `status`; --follow then waits and starts over, so an
    operator can fix a key, a config, a disk or a network without restarting the shipper.
    """

    def __init__(self, config: str | None, follow: bool, since: str | None, origin: float | None,
                 stdout_closed: bool, started: float, stopper: Stopper, fmt: str | None = None) -> None:
        self.config, self.is_follow, self.since, self.stdout_closed = config, follow, since, stdout_closed
        self.origin = origin
        self.had_state = False  # a state this run has used: it must not vanish between attempts
        self.started, self.stopper = started, stopper
        self.health = Health()
        self.cfg: Config | None = None  # the last config that loaded
        self.format = fmt  # run --format: wins over [output] format
        self.metrics_path: str | None = None
        self.interval = 60.0
        self.total = Counters()  # every client of this run counts its requests into it
        self.high_water: float | None = None
        self.last_request_id: str | None = None
        self.stopped: str | None = None
        self.summary = False
        self.failures = 0  # in a row: sets the --follow backoff
        self.episodes = Episodes()
        self.metrics_problem: str | None = None

    def follow(self) -> int:
        while True:
            try:
                return self.attempt()
            except PluginError as exc:
                if self.stopper.requested:  # stopped while failing (a stalled reader): no retry
                    raise
                if exc.code in (Exit.USAGE, Exit.IOERR) or (exc.code == Exit.DATAERR and not isinstance(exc, ApiError)):
                    return self._give_up(exc)
                self.failures += 1
                cap = max(self.interval, 5.0)
                delay = min(5.0 * 2 ** min(self.failures - 1, 20), cap)
                self.episodes.failed(exc, delay, cap)
            try:
                self.stopper.sleep(delay)
            except Interrupted:
                self.stopped = self.stopper.reason
                self.summary = True
                return Exit.OK
            if self.stopper.reload:  # SIGHUP: retry now; the attempt re-reads the config anyway
                self.stopper.reload = False
                reopen()

    def _give_up(self, exc: PluginError) -> int:
        """Only an operator can fix these. A corrupt state waits a minute first, so a shipper
        that restarts its child at once (syslog-ng) does not spin."""
        if exc.code == Exit.DATAERR:
            log.error("%s; exiting in 60 s (only an operator can fix this)", exc)
            end = time.monotonic() + 60
            try:
                while (left := end - time.monotonic()) > 0:
                    self.stopper.reload = False  # a SIGHUP does not shorten it
                    self.stopper.sleep(left)
            except Interrupted:
                pass
            return int(exc.code)
        raise exc

    def attempt(self) -> int:
        store: StateStore | None = None
        locked = False
        self.collector: Collector | None = None
        self.health.last_attempt = time.time()
        try:
            cfg = self.cfg = _formatted(load_config(self.config).config, self.format)
            use_config_target(cfg.log.target)
            self.metrics_path, self.interval = cfg.metrics.textfile, cfg.collect.interval_seconds
            key = find_key(cfg)
            sink = make_sink(cfg, self.stdout_closed, self.stopper.waiting)  # before the state: a closed stdout commits nothing
            try:
                store = StateStore.configured(cfg)
                store.lock()
                locked = True
                state = _first_or_existing(store, cfg, self.origin, self.since, self.started, self.had_state)
                self.had_state, self.origin = True, None  # --since is spent once a state exists
                state.totals.add(self.health.unfolded)  # requests of failed attempts nobody recorded
                self.health.unfolded = Counters()
                self._loop(cfg, key.key, store, state, sink)
                return Exit.OK
            finally:
                sink.close()
        except PluginError as exc:
            self._failed(exc, store if locked else None, self.collector)
            raise
        finally:
            if store is not None:
                store.close()

    def _failed(self, exc: PluginError, store: StateStore | None, collector: Collector | None) -> None:
        """Note the failure for `status` (on the last committed state, never on a half page)
        and in the metrics."""
        self.health.error = exc.reason
        requests = Counters()
        if collector is not None:
            collector.fold_requests(requests)
        recorded = record_error(store, exc, requests) if store is not None and exc.reason != "lock" else None
        if recorded is not None:
            self.health.state = recorded
        else:
            self.health.unfolded.add(requests)  # into the state at the next attempt's first commit
            if self.health.state is None and self.metrics_path and self.cfg is not None:
                self.health.state = _peek(self.cfg)
        self._write_metrics()

    def _write_metrics(self) -> None:
        if self.metrics_path:
            problem = metrics.write(self.metrics_path, self.health)
            if problem and problem != self.metrics_problem:  # once, not every poll
                log.warning("%s; the run goes on", problem)
            self.metrics_problem = problem

    def _polled(self, collector: Collector) -> None:
        self.health.state, self.health.error = collector.state, None
        self.failures = 0
        self.health.rate_limit_remaining = collector.client.rate_limit_remaining
        self.high_water, self.last_request_id = collector.state.high_water, collector.state.last_request_id
        self._write_metrics()
        self.episodes.recovered()

    def _loop(self, cfg: Config, key: str, store: StateStore, state: State, sink: Sink) -> None:
        gc.freeze()  # the modules and pydantic schemas loaded so far live as long as the process:
        # keep the collector from walking them on every full collection (~0.5 µs an activity)
        stopper, total = self.stopper, self.total
        client = Client(cfg.api, key, total, quiet=self.episodes.ongoing)  # the episode is logged already
        progress = Progress.on_a_terminal(self.started)
        collector = self.collector = Collector(cfg, client, store, state, sink, stopper, progress)
        self.summary = True
        try:
            while True:
                try:
                    counters, self.stopped = collector.poll()
                    self._polled(collector)
                    if self.is_follow:
                        log.info("poll finished: emitted=%d rejected=%d already_seen=%d pages=%d high_water=%s",
                                 counters.emitted, counters.rejected, counters.duplicates, counters.pages,
                                 format_rfc3339(collector.state.high_water))
                except Interrupted:
                    self.stopped = stopper.reason
                    failing = client.failing or (
                        (Exit.UNAVAILABLE, f"forward output: {sink.failing}") if getattr(sink, "failing", None) else None)
                    if failing and self.stopped == "max-runtime" and not self.is_follow:
                        code, cause = failing  # it must not hide an outage (the API's or the receiver's)
                        raise PluginError(code, f"still failing when the run stopped ({self.stopped}): {cause}",
                                          "the cursor did not move past what failed; see the retries logged above",
                                          "rate_limited" if code == Exit.TEMPFAIL else None) from None
                    self.health.state = collector.state  # the pages committed before the stop
                    self._write_metrics()
                finally:
                    _add_deliveries(total, collector.counters)  # a poll cut short counts what it did
                    self.high_water = collector.state.high_water
                if not self.is_follow or self.stopped:
                    return
                _trim_heap()
                try:
                    stopper.sleep(cfg.collect.interval_seconds)
                except Interrupted:
                    self.stopped = stopper.reason
                    return
                if stopper.reload:
                    stopper.reload = False
                    reopen()
                    new = _reload(self.config, cfg)
                    if new is not cfg:
                        cfg = _formatted(new, self.format)
                        use_config_target(cfg.log.target)
                        self.metrics_path, self.interval = cfg.metrics.textfile, cfg.collect.interval_seconds
                        client.close()
                        sink.close()
                        client = Client(cfg.api, key, total, quiet=self.episodes.ongoing)
                        sink = make_sink(cfg, waiting=stopper.waiting)
                        collector.rejects.close()
                        collector = self.collector = Collector(cfg, client, store, collector.state, sink, stopper,
                                                               progress)
        except PluginError:
            self.summary = self.is_follow
            raise
        finally:
            if progress:
                progress.done()
            collector.rejects.close()
            client.close()

    def print_summary(self) -> None:
        t = self.total
        fields = dict(emitted=t.emitted, rejected=t.rejected, already_seen=t.duplicates, pages=t.pages,
                      requests=t.requests, retries=t.retries, duration=round(time.time() - self.started, 2),
                      high_water=format_rfc3339(self.high_water) if self.high_water is not None else None,
                      last_request_id=self.last_request_id, stopped=self.stopped)
        text = " ".join(f"{k}={v}" + ("s" if k == "duration" else "") for k, v in fields.items() if v is not None)
        log.info("run finished: %s", text, extra={"fields": fields})


def _peek(cfg: Config) -> State | None:
    """The committed state, read-only (another instance may hold the lock): for the metrics."""
    try:
        return StateStore.configured(cfg).load(readonly=True)
    except PluginError:
        return None


def _first_or_existing(store: StateStore, cfg: Config, origin: float | None, since: str | None,
                       started: float, had_state: bool = False) -> State:
    state = store.load()
    if state is None and had_state:  # deleted while --follow waited to retry: not a first run
        raise StateLost(Exit.DATAERR, f"the state {store.path} was deleted while the collector ran",
                        f"restore it from a backup, or `{NAME} state reset --since <last good time>`")
    if state is None:
        state = State.starting_at(origin if origin is not None else started - cfg.collect.initial_lookback.total_seconds())
        store.commit(state)  # the origin must survive a crash before the first page
        log.info("first run: collecting from %s", format_rfc3339(state.origin))
    elif origin is not None:
        raise PluginError(Exit.USAGE, f"--since applies to a first run only; {store.path} already has a cursor "
                          f"at {format_rfc3339(state.high_water)}", f"to re-deliver from {since}, run "
                          f"`{NAME} state reset --since {since}` first")
    return state


def _add_deliveries(total: Counters, poll: Counters) -> None:
    """The clients count requests and retries into `total` themselves."""
    total.emitted += poll.emitted
    total.rejected += poll.rejected
    total.duplicates += poll.duplicates
    total.pages += poll.pages


def record_error(store: StateStore, exc: PluginError, requests: Counters) -> State | None:
    """Note the failure, and the requests the failed poll made, on the last committed state.
    Returns that state (None when there is none, or it cannot be read)."""
    try:
        state = store.load()
    except PluginError:
        return None
    if state is not None:
        state.last_error = str(exc)
        state.last_error_at = time.time()
        state.last_error_reason = exc.reason
        state.totals.add(requests)
        try:
            store.commit(state, prune=False)
        except PluginError:
            return None
    return state


def _formatted(cfg: Config, fmt: str | None) -> Config:
    """The config with `run --format` in place of [output] format."""
    return cfg if fmt is None else cfg.model_copy(update={"output": cfg.output.model_copy(update={"format": fmt})})


def _reload(config: str | None, cfg: Config) -> Config:
    try:
        new = load_config(config).config
    except PluginError as exc:
        log.error("SIGHUP: config not reloaded, keeping the running one: %s", exc)
        return cfg
    if new.state.path != cfg.state.path:
        log.warning("SIGHUP: [state] path changes need a restart; keeping %s", cfg.state.path)
        new = new.model_copy(update={"state": cfg.state})
    log.info("SIGHUP: config reloaded")
    return new


_libc: Any = None


def _trim_heap() -> None:
    """Give the pages' freed memory back to the system between polls: a resident instance per
    tenant would otherwise keep its largest page's peak for good (glibc; elsewhere a no-op)."""
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        _libc = False
