"""`run`: the loop around the collection cycle — first run, polls, --follow, SIGHUP reload,
rollback after a failed poll, the error `status` shows, the progress display, the summary line.

The cycle itself (one poll) is in collect.py; this module decides what happens between polls.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from . import NAME
from .api import ApiError, Client
from .collect import Collector
from .config import Config, load_config
from .errors import Exit, Interrupted, PluginError
from .keys import find_key
from .logs import log
from .sinks import DeliveryError, make_sink
from .state import Counters, State, StateLost, StateStore
from .stop import Stopper
from .timeutil import format_rfc3339


def since_arg(text: str) -> float:
    from .timeutil import parse_since

    try:
        return parse_since(text).timestamp()
    except ValueError as exc:
        raise PluginError(Exit.USAGE, f"--since: {exc}") from None


def open_store(cfg: Config) -> StateStore:
    c = cfg.collect
    return StateStore(cfg.state.path, (c.overlap_seconds, c.late_lookback.total_seconds()),
                      tuple(c.late_activity_types))


def run(config: str | None, follow: bool = False, since: str | None = None, max_runtime: float | None = None,
        stdout_closed: bool = False) -> int:
    started = time.time()
    loaded = load_config(config)
    cfg = loaded.config
    origin = since_arg(since) if since else None
    key = find_key(cfg)
    log.debug("config %s; key from %s", loaded.describe(), key.source)
    sink = make_sink(cfg.output, stdout_closed)  # before the state: a closed stdout commits nothing
    store = open_store(cfg)
    store.lock()
    try:
        state = _first_or_existing(store, cfg, origin, since, started)
        return _loop(cfg, config, follow, max_runtime, key.key, store, state, sink, started)
    finally:
        sink.close()
        store.close()


def _first_or_existing(store: StateStore, cfg: Config, origin: float | None, since: str | None,
                       started: float) -> State:
    state = store.load()
    if state is None:
        state = State.starting_at(origin if origin is not None else started - cfg.collect.initial_lookback.total_seconds())
        store.commit(state)  # the origin must survive a crash before the first page
        log.info("first run: collecting from %s", format_rfc3339(state.origin))
    elif origin is not None:
        raise PluginError(Exit.USAGE, f"--since applies to a first run only; {store.path} already has a cursor "
                          f"at {format_rfc3339(state.high_water)}", f"to re-deliver from {since}, run "
                          f"`{NAME} state reset --since {since}` first")
    return state


def _loop(cfg: Config, config: str | None, follow: bool, max_runtime: float | None, key: str,
          store: StateStore, state: State, sink: Any, started: float) -> int:
    gc.freeze()  # the modules and pydantic schemas loaded so far live as long as the process:
    # keep the collector from walking them on every full collection (~0.5 µs an activity)
    stopper = Stopper()
    stopper.install(max_runtime)
    total = Counters()
    client = Client(cfg.api, key, total)  # every client of this run counts into `total`
    progress = Progress(started) if sys.stderr.isatty() else None
    collector = Collector(cfg, client, store, state, sink, stopper, progress)
    stopped: str | None = None
    try:
        while True:
            try:
                counters, stopped = collector.poll()
                if follow:
                    log.info("poll finished: emitted=%d rejected=%d already_seen=%d pages=%d high_water=%s",
                             counters.emitted, counters.rejected, counters.duplicates, counters.pages,
                             format_rfc3339(collector.state.high_water))
            except (ApiError, DeliveryError, PluginError) as exc:
                record_error(store, exc)
                if not follow or exc.code == Exit.IOERR or isinstance(exc, StateLost):  # needs an operator
                    raise
                log.error("%s; next attempt in %.0fs", exc, cfg.collect.interval_seconds)
                collector.state = store.load() or collector.state  # back to the last commit
            except Interrupted:
                stopped = stopper.reason
                if client.failing and stopped == "max-runtime" and not follow:  # it must not hide an outage
                    code, cause = client.failing
                    error = PluginError(code, f"the API was still failing when the run stopped ({stopped}): {cause}",
                                        "the cursor did not move; see the retries logged above")
                    record_error(store, error)
                    raise error from None
            finally:
                _add_deliveries(total, collector.counters)  # a poll cut short counts what it did
            if not follow or stopped:
                break
            try:
                stopper.sleep(cfg.collect.interval_seconds)
            except Interrupted:
                stopped = stopper.reason
                break
            if stopper.reload:
                stopper.reload = False
                new = _reload(config, cfg)
                if new is not cfg:
                    cfg = new
                    client.close()
                    sink.close()
                    client = Client(cfg.api, key, total)
                    sink = make_sink(cfg.output)
                    collector.rejects.close()
                    collector = Collector(cfg, client, store, collector.state, sink, stopper, progress)
    finally:
        stopper.disarm()
        if progress:
            progress.done()
        collector.rejects.close()
        client.close()
    log.info("run finished: emitted=%d rejected=%d already_seen=%d pages=%d requests=%d retries=%d "
             "duration=%.2fs high_water=%s last_request_id=%s%s", total.emitted, total.rejected,
             total.duplicates, total.pages, total.requests, total.retries, time.time() - started,
             format_rfc3339(collector.state.high_water), collector.state.last_request_id,
             f" stopped={stopped}" if stopped else "")
    return Exit.OK


def _add_deliveries(total: Counters, poll: Counters) -> None:
    """The clients count requests and retries into `total` themselves."""
    total.emitted += poll.emitted
    total.rejected += poll.rejected
    total.duplicates += poll.duplicates
    total.pages += poll.pages


def record_error(store: StateStore, exc: PluginError) -> None:
    """Note the failure for `status` on the last committed state, never on a half page."""
    try:
        state = store.load()
        if state is not None:
            state.last_error = str(exc)
            state.last_error_at = time.time()
            state.last_error_reason = exc.code.name.lower()
            store.commit(state, prune=False)
    except PluginError:
        pass


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


class Progress:
    """A one-line backfill display, only when stderr is a terminal (no \\r in logs, ever)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.shown = False

    def __call__(self, counters: Counters, reached: float, target: float) -> None:
        rate = counters.emitted / max(time.time() - self.started, 1e-3)
        sys.stderr.write(f"\r{counters.emitted} activities, {counters.pages} pages, {rate:,.0f}/s, "
                         f"reached {format_rfc3339(reached)} of {format_rfc3339(target)}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
