"""Command line: argument parsing and the commands. Heavy modules are imported per command so
that a scheduled `run` that finds nothing new starts quickly."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

from . import NAME, __version__
from .errors import Exit, Interrupted, PluginError
from .logs import log, setup

EXAMPLES = f"""examples:
  {NAME} --config /etc/{NAME}/config.toml run                 # collect what is new, exit
  {NAME} --config /etc/{NAME}/config.toml run --follow        # keep polling
  {NAME} run --since 2026-01-01 --max-runtime 50             # first run: backfill from a date
  {NAME} key set < key.txt                                   # store the key in the OS keyring
  {NAME} check                                               # doctor: config, key, state, api
  {NAME} status --max-age 24h                                # exit 1 when the feed is stale
  {NAME} demo                                                # the whole pipeline, simulated API

exit codes: 0 ok, 1 stale (status), 64 usage, 65 bad data/corrupt state, 69 API unavailable,
74 stdout closed, 75 temporary (rate limit, lock held, disk full), 77 auth, 78 configuration
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 64, not argparse's 2
        self.print_usage(sys.stderr)
        if "sk-ant-" in message:  # never echo a key typed on the command line into logs
            message = re.sub(r"sk-ant-\S+", "[REDACTED]", message)
            message += f" (keys are never taken from the command line: `{NAME} key set < file` or type it at the prompt)"
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(Exit.USAGE)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog=NAME, description="Poll the Anthropic Compliance API Activity Feed and print one "
                "Anthropic.Activity JSON line per activity on stdout.", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"{NAME} {__version__}")
    p.add_argument("--config", metavar="FILE", help=f"config file (default: ${{ANTHROPIC_COMPLIANCE_INPUT_CONFIG}} "
                   f"or /etc/{NAME}/config.toml)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="stderr log level (default info)")
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="stderr log format")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="collect everything new, print it, exit 0", formatter_class=fmt,
                         epilog=f"examples:\n  {NAME} --config /etc/{NAME}/config.toml run --max-runtime 50\n"
                                f"  {NAME} --config /etc/{NAME}/config.toml run --follow\n"
                                f"  {NAME} run --since 7d   # first run only: start 7 days back")
    run.add_argument("--follow", action="store_true", help="keep polling every collect.interval_seconds")
    run.add_argument("--since", metavar="WHEN", help="first run: start here (2026-01-01, 2026-01-01T12:00:00Z, 7d)")
    run.add_argument("--max-runtime", metavar="S", type=_positive,
                     help="stop cleanly after S seconds and resume next run (keep it below the shipper's interval)")
    run.set_defaults(func=cmd_run)

    key = sub.add_parser("key", help="store, inspect or delete the API key").add_subparsers(
        dest="key_command", metavar="ACTION", parser_class=_Parser)
    key.required = True
    key_examples = {
        "set": f"examples:\n  {NAME} key set                      # prompts, input hidden\n"
               f"  {NAME} key set --verify < key.txt  # first line of stdin; one API call checks it",
        "status": f"example:\n  {NAME} --config /etc/{NAME}/config.toml key status",
        "delete": f"example:\n  {NAME} key delete --profile staging",
    }
    for name, func, text in (("set", cmd_key_set, "read the key from a prompt or stdin and store it in the OS keyring"),
                             ("status", cmd_key_status, "which source the next run would use (never prints the key)"),
                             ("delete", cmd_key_delete, "delete the key from the OS keyring")):
        kp = key.add_parser(name, help=text, description=text, epilog=key_examples[name], formatter_class=fmt)
        kp.add_argument("--profile", help="keyring username (default: [key] profile)")
        if name == "set":
            kp.add_argument("--verify", action="store_true", help="check the key with one API call before storing it")
        kp.set_defaults(func=func)

    check = sub.add_parser("check", help="doctor: config, key source, state dir, one API call", formatter_class=fmt,
                           epilog=f"example:\n  {NAME} --config /etc/{NAME}/config.toml check   # exit 0 when all pass")
    check.set_defaults(func=cmd_check)

    status = sub.add_parser("status", help="cursor, last successful poll, lag, counters", formatter_class=fmt,
                            epilog=f"example (cron / Nagios): {NAME} status --max-age 24h || alert")
    status.add_argument("--max-age", metavar="DURATION", help="exit 1 if the last success or the newest "
                        "activity is older than this (1h, 24h)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)

    state = sub.add_parser("state", help="inspect or reset the cursor").add_subparsers(
        dest="state_command", metavar="ACTION", parser_class=_Parser)
    state.required = True
    show = state.add_parser("show", help="print the state file (counts, not ids)", formatter_class=fmt,
                            epilog=f"example:\n  {NAME} --config /etc/{NAME}/config.toml state show")
    show.set_defaults(func=cmd_state_show)
    reset = state.add_parser("reset", help="restart collection from --since, or from initial_lookback with --yes",
                             formatter_class=fmt, epilog=f"examples:\n  {NAME} state reset --since 2026-01-01   "
                             f"# re-deliver everything since then\n  {NAME} state reset --yes")
    reset.add_argument("--since", metavar="WHEN", help="re-deliver everything from here")
    reset.add_argument("--yes", action="store_true", help="delete the state; the next run starts at initial_lookback")
    reset.set_defaults(func=cmd_state_reset)

    demo = sub.add_parser("demo", help="run the whole pipeline against the built-in simulated API", formatter_class=fmt,
                          epilog=f"example:\n  {NAME} demo | jq -c '{{type, created_at}}'")
    demo.add_argument("--count", type=int, default=200, help="activities to simulate (default 200)")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="serve the simulated API on 127.0.0.1 (try shipper configs with no key)",
                         formatter_class=fmt, epilog=f"example:\n  {NAME} simulate --port 8089 &\n"
                         f"  ANTHROPIC_COMPLIANCE_API_KEY=sk-ant-api01-simulated-key-for-local-tests-only "
                         f"{NAME} --config sim.toml run   # sim.toml: [api] base_url = \"http://127.0.0.1:8089\"")
    sim.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 picks one)")
    sim.add_argument("--count", type=int, default=1000, help="activities over the last 24 h (default 1000)")
    sim.add_argument("--rate", type=float, default=30, help="new activities per minute (default 30)")
    sim.set_defaults(func=cmd_simulate)
    return p


def main(argv: list[str] | None = None) -> int:
    # No pydantic plugins here; skipping their entry-point scan saves ~25 ms on every run.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = build_parser().parse_args(argv)
    setup(args.log_level, args.log_format)
    try:
        return int(args.func(args) or 0)
    except PluginError as exc:
        log.error("%s", exc)
        return int(exc.code)
    except (Interrupted, KeyboardInterrupt):
        return 0
    except Exception:
        log.exception("internal error (please report it)")
        return 70


# -- run --------------------------------------------------------------------------------------

def _since(text: str) -> float:
    from .timeutil import parse_since

    try:
        return parse_since(text).timestamp()
    except ValueError as exc:
        raise PluginError(Exit.USAGE, f"--since: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from .api import ApiError, Client
    from .collect import Collector, Summary
    from .config import load_config
    from .keys import find_key
    from .sinks import DeliveryError, OutputClosed, make_sink
    from .state import State, StateStore
    from .stop import Stopper

    started = time.time()
    loaded = load_config(args.config)
    cfg = loaded.config
    since = _since(args.since) if args.since else None
    key = find_key(cfg)
    log.debug("config %s; key from %s", loaded.describe(), key.source)
    store = StateStore(cfg.state.path)
    store.lock()
    state = store.load()
    if state is None:
        state = State.starting_at(since if since is not None else started - cfg.collect.initial_lookback.total_seconds())
        store.save(state)  # the origin must survive a crash before the first page
        log.info("first run: collecting from %s", state.origin)
    elif since is not None:
        raise PluginError(Exit.USAGE, f"--since applies to a first run only; {store.path} already has a cursor "
                          f"at {state.high_water}", f"to re-deliver from {args.since}, run `{NAME} state reset "
                          f"--since {args.since}` first")
    stopper = Stopper()
    stopper.install(args.max_runtime)
    client = Client(cfg.api, key.key)
    sink = make_sink(cfg.output)
    total = Summary()
    progress = Progress(started) if sys.stderr.isatty() else None
    collector = Collector(cfg, client, store, state, sink, stopper, progress)
    try:
        while True:
            try:
                summary = collector.poll()
                total.add(summary)
                if args.follow:
                    log.info("poll finished: emitted=%d rejected=%d already_seen=%d pages=%d high_water=%s",
                             summary.emitted, summary.rejected, summary.duplicates, summary.pages,
                             collector.state.high_water)
            except (ApiError, DeliveryError) as exc:
                _record_error(store, exc)
                if not args.follow:
                    raise
                log.error("%s; next attempt in %.0fs", exc, cfg.collect.interval_seconds)
                collector.state = store.load() or collector.state  # back to the last commit
            except Interrupted:
                total.stopped = stopper.reason
            if not args.follow or stopper.requested or total.stopped:
                break
            try:
                stopper.sleep(cfg.collect.interval_seconds)
            except Interrupted:
                total.stopped = stopper.reason
                break
            if stopper.reload:
                cfg, client, sink = _reload(args, cfg, client, sink, key.key)
                collector.rejects.close()
                collector = Collector(cfg, client, store, collector.state, sink, stopper)
                stopper.reload = False
    except OutputClosed:
        log.error("stdout was closed by the reader; stopping without committing the page in flight")
        return Exit.IOERR
    finally:
        stopper.disarm()
        if progress:
            progress.done()
        collector.rejects.close()
        sink.close()
        client.close()
    stopped = f" stopped={total.stopped}" if total.stopped else ""
    log.info("run finished: emitted=%d rejected=%d already_seen=%d pages=%d requests=%d retries=%d "
             "duration=%.2fs high_water=%s last_request_id=%s%s", total.emitted, total.rejected,
             total.duplicates, total.pages, client.requests, client.retries[0], time.time() - started,
             collector.state.high_water, collector.state.stats.last_request_id, stopped)
    return Exit.OK


class Progress:
    """A one-line backfill display, only when stderr is a terminal (no \\r in logs, ever)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.shown = False

    def __call__(self, summary: Any, reached: str | None, target: str) -> None:
        rate = summary.emitted / max(time.time() - self.started, 1e-3)
        sys.stderr.write(f"\r{summary.emitted} activities, {summary.pages} pages, {rate:,.0f}/s, "
                         f"reached {reached or '-'} of {target}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _record_error(store: Any, exc: PluginError) -> None:
    """Note the failure for `status` on the last committed state, never on a half page."""
    from .timeutil import format_rfc3339

    try:
        state = store.load()
        if state is not None:
            state.stats.last_error = str(exc)
            state.stats.last_error_at = format_rfc3339(time.time())
            store.save(state)
    except PluginError:
        pass


def _reload(args: argparse.Namespace, cfg: Any, client: Any, sink: Any, key: str) -> tuple[Any, Any, Any]:
    from .api import Client
    from .config import load_config
    from .sinks import make_sink

    try:
        new = load_config(args.config).config
    except PluginError as exc:
        log.error("SIGHUP: config not reloaded, keeping the running one: %s", exc)
        return cfg, client, sink
    if new.state.path != cfg.state.path:
        log.warning("SIGHUP: [state] path changes need a restart; keeping %s", cfg.state.path)
        new = new.model_copy(update={"state": cfg.state})
    client.close()
    sink.close()
    log.info("SIGHUP: config reloaded")
    return new, Client(new.api, key), make_sink(new.output)


# -- key --------------------------------------------------------------------------------------

def _key_config(args: argparse.Namespace) -> Any:
    from .config import load_config

    cfg = load_config(args.config).config
    if getattr(args, "profile", None):
        cfg = cfg.model_copy(update={"key": cfg.key.model_copy(update={"profile": args.profile})})
    return cfg


def cmd_key_set(args: argparse.Namespace) -> int:
    from . import keys

    cfg = _key_config(args)
    if sys.stdin.isatty():
        import getpass

        raw = getpass.getpass("Compliance API key (input hidden): ")
    else:
        raw = sys.stdin.readline()
    key = keys.clean(raw, "the key read from stdin")
    warning = keys.shape_warning(key)
    if warning:
        log.warning("%s", warning)
    if args.verify:
        _verify(cfg, key)
    backend = keys.store(cfg.key.profile, key)
    print(f"stored {keys.mask(key)} for profile {cfg.key.profile!r} in the OS keyring ({backend})")
    return Exit.OK


def _verify(cfg: Any, key: str) -> None:
    from .api import Client, Query

    client = Client(cfg.api.model_copy(update={"max_retries": 2}), key)
    try:
        page = client.get_page(Query(limit=1, order="desc"))
    finally:
        client.close()
    log.info("key verified: the API answered (request-id %s)", page.request_id)


def cmd_key_status(args: argparse.Namespace) -> int:
    from . import keys

    cfg = _key_config(args)
    found, misses = keys.lookup(cfg)
    for miss in misses:
        print(f"  {miss.source}: {miss.reason}")
    if not found:
        print(f"no key: none of the sources above has one (profile {cfg.key.profile!r})")
        return Exit.CONFIG
    print(f"the next run uses: {found.source}")
    print(f"key: {keys.mask(found.key)}")
    warning = keys.shape_warning(found.key)
    if warning:
        print(f"warning: {warning}")
    return Exit.OK


def cmd_key_delete(args: argparse.Namespace) -> int:
    from . import keys

    cfg = _key_config(args)
    if keys.delete(cfg.key.profile):
        print(f"deleted the key for profile {cfg.key.profile!r} from the OS keyring")
    else:
        print(f"no key stored for profile {cfg.key.profile!r} in the OS keyring")
    return Exit.OK


# -- check / status / state -------------------------------------------------------------------

def cmd_check(args: argparse.Namespace) -> int:
    from .ops import check

    return check(args.config)


def cmd_status(args: argparse.Namespace) -> int:
    from .ops import status

    return status(args.config, args.max_age, args.json)


def cmd_state_show(args: argparse.Namespace) -> int:
    from .config import load_config
    from .state import StateStore

    cfg = load_config(args.config).config
    state = StateStore(cfg.state.path).load()
    if state is None:
        print(f"no state at {cfg.state.path}: the next run is a first run")
        return Exit.OK
    doc = state.to_json()
    doc["path"] = cfg.state.path
    doc["seen"] = len(state.seen)
    doc["late_seen"] = len(state.late_seen)
    print(json.dumps(doc, indent=2))
    return Exit.OK


def cmd_state_reset(args: argparse.Namespace) -> int:
    from .config import load_config
    from .state import State, StateStore

    if not args.since and not args.yes:
        raise PluginError(Exit.USAGE, "state reset needs --since WHEN (re-deliver from then) or --yes "
                          "(forget the cursor; the next run starts at initial_lookback)")
    cfg = load_config(args.config).config
    store = StateStore(cfg.state.path)
    store.lock()
    if args.since:
        state = State.starting_at(_since(args.since))
        store.save(state)
        print(f"state reset: the next run delivers everything from {state.origin}")
    else:
        existed = store.delete()
        print(f"state {'deleted' if existed else 'was already absent'}: the next run starts "
              f"{cfg.collect.initial_lookback} back")
    return Exit.OK


# -- demo / simulate --------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    return demo(args.count, args.log_level)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .demo import simulate

    return simulate(args.port, args.count, args.rate)

