"""Command line: a parser and a dispatcher, nothing else. Each command's options, help and
example sit together in COMMANDS; its body lives in the module named for what it does, imported
only when that command runs (a scheduled `run` that finds nothing new starts quickly)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable

from . import FORMATS, NAME, __version__
from .argtypes import number, text
from .errors import Exit, Interrupted, PluginError, exit_codes_help
from .keyshape import SIMULATED_KEY, contains_key, redact_keys
from .logs import TARGET_HELP, log, setup
from .stdio import guard_std_fds, stdout_broken, stdout_failed

CFG = f"--config /etc/{NAME}/config.toml"


def _arg(*flags: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return flags, options


PROFILE = _arg("--profile", type=text, help="keyring username (default: [key] profile)")


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    help: str
    examples: str
    target: str  # "module:function"
    call: Callable[[argparse.Namespace], dict[str, Any]]
    args: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()


COMMANDS = (
    Command(("run",), "collect everything new, write it (stdout or the forward output) and exit; --follow keeps on",
            f"{NAME} {CFG} run --max-runtime 50\n{NAME} {CFG} run --follow\n"
            f"{NAME} run --since 7d   # first run only: start 7 days back", "runner:run",
            lambda a: dict(config=a.config, follow=a.follow, since=a.since, max_runtime=a.max_runtime,
                           stdout_closed=a.stdout_closed, fmt=a.format),
            (_arg("--follow", action="store_true", help="keep polling every collect.interval_seconds"),
             _arg("--format", choices=FORMATS, help="raw (the record as received), ecs or ocsf; default: [output] format"),
             _arg("--since", metavar="WHEN", type=text, help="first run: start here (2026-01-01, 2026-01-01T12:00:00Z, 7d)"),
             _arg("--max-runtime", metavar="S", type=number(1e-3, 366 * 86400), help="stop cleanly after S seconds "
                  "and resume next run (keep it below the shipper's interval)"))),
    Command(("key", "set"), "read the key from a prompt or stdin and store it in the OS keyring",
            f"{NAME} key set                      # prompts, input hidden\n"
            f"{NAME} key set --verify < key.txt  # first line of stdin; one API call checks it",
            "key_commands:key_set", lambda a: dict(config=a.config, profile=a.profile, verify=a.verify),
            (PROFILE, _arg("--verify", action="store_true", help="check the key with one API call before storing it"))),
    Command(("key", "status"), "which source the next run would use (never prints the key)",
            f"{NAME} {CFG} key status", "key_commands:key_status",
            lambda a: dict(config=a.config, profile=a.profile), (PROFILE,)),
    Command(("key", "delete"), "delete the key from the OS keyring", f"{NAME} key delete --profile staging",
            "key_commands:key_delete", lambda a: dict(config=a.config, profile=a.profile), (PROFILE,)),
    Command(("check",), "doctor: config, key source, state dir, one API call",
            f"{NAME} {CFG} check   # exit 0 when all pass", "check:check", lambda a: dict(config_arg=a.config)),
    Command(("status",), "cursor, last successful poll, lag, counters",
            f"{NAME} status --max-age 24h || alert   # cron / Nagios", "status:status",
            lambda a: dict(config=a.config, max_age=a.max_age, as_json=a.json),
            (_arg("--max-age", metavar="DURATION", type=text, help="exit 1 if the last success or the newest activity is "
                  "older than this (1h, 24h)"), _arg("--json", action="store_true", help="print one JSON object"))),
    Command(("state", "show"), "print the state (counts, not ids)", f"{NAME} {CFG} state show", "state_commands:show",
            lambda a: dict(config=a.config)),
    Command(("state", "reset"), "restart collection from --since, or from initial_lookback with --yes",
            f"{NAME} state reset --since 2026-01-01   # re-deliver everything since then\n{NAME} state reset --yes",
            "state_commands:reset", lambda a: dict(config=a.config, since=a.since, yes=a.yes),
            (_arg("--since", metavar="WHEN", type=text, help="re-deliver everything from here"),
             _arg("--yes", action="store_true", help="delete the state; the next run starts at initial_lookback"))),
    Command(("demo",), "run the whole pipeline against the built-in simulated API",
            f"{NAME} demo | jq -c '{{type, created_at, who: .actor.email_address}}'\n"
            f"{NAME} demo --seed 42 --count 5000 --no-incident > day.jsonl", "demo:demo",
            lambda a: dict(count=a.count, log_level=a.log_level, seed=a.seed, incident=not a.no_incident, fmt=a.format),
            (_arg("--count", type=number(0, 1_000_000, whole=True), default=130,
                  help="everyday activities over the last 23 h (default 130; the incident adds 67)"),
             _arg("--seed", type=number(0, 2**32, whole=True), default=7,
                  help="another day of the same cast (default 7)"),
             _arg("--no-incident", action="store_true", help="leave the scripted incident out"),
             _arg("--format", choices=FORMATS, default="raw", help="raw (default), ecs or ocsf"))),
    Command(("simulate",), "serve the simulated API on 127.0.0.1 (try shipper configs with no key)",
            f"{NAME} simulate --port 8089 &\nANTHROPIC_COMPLIANCE_API_KEY={SIMULATED_KEY} {NAME} --config sim.toml run"
            "   # sim.toml: [api] base_url = \"http://127.0.0.1:8089\"", "demo:simulate",
            lambda a: dict(port=a.port, count=a.count, rate=a.rate),
            (_arg("--port", type=number(0, 65535, whole=True), default=8089,
                  help="port (default 8089; 0 picks one)"),
             _arg("--count", type=number(0, 10_000_000, whole=True), default=1000,
                  help="activities over the last 24 h (default 1000)"),
             _arg("--rate", type=number(0, 600_000), default=30,
                  help="new activities per minute (default 30)"))),
)

EXAMPLES = "examples:\n" + "".join(f"  {line}\n" for line in (
    f"{NAME} {CFG} run                 # collect what is new, exit",
    f"{NAME} {CFG} run --follow        # keep polling",
    f"{NAME} run --since 2026-01-01 --max-runtime 50             # first run: backfill from a date",
    f"{NAME} key set < key.txt                                   # store the key in the OS keyring",
    f"{NAME} check                                               # doctor: config, key, state, api",
    f"{NAME} status --max-age 24h                                # exit 1 when the feed is stale",
    f"{NAME} demo                                                # the whole pipeline, simulated API",
)) + "\n" + exit_codes_help() + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 64, not argparse's 2
        self.print_usage(sys.stderr)
        if contains_key(message):  # argparse quotes a refused value: never echo a key into logs
            message = redact_keys(message) + (f" (keys are never taken from the command line: "
                                              f"`{NAME} key set < file` or type it at the prompt)")
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(Exit.USAGE)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog=NAME, description="Poll the Anthropic Compliance API Activity Feed and print one "
                "Anthropic.Activity JSON line per activity on stdout.", epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"{NAME} {__version__}")
    p.add_argument("--config", metavar="FILE", type=text, help=f"config file (default: ${{ANTHROPIC_COMPLIANCE_INPUT_CONFIG}} "
                   f"or /etc/{NAME}/config.toml)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default info)")
    p.add_argument("--log-format", default="text", choices=["text", "json"], help="log format")
    p.add_argument("--log-target", metavar="TARGET", type=text, help=f"where logs go: {TARGET_HELP}; default [log] target")
    groups: dict[tuple[str, ...], Any] = {(): p.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                                               parser_class=_Parser)}
    for cmd in COMMANDS:
        parent = cmd.words[:-1]
        if parent not in groups:
            group = groups[()].add_parser(parent[0], help={"key": "store, inspect or delete the API key",
                                                           "state": "inspect or reset the cursor"}[parent[0]])
            groups[parent] = group.add_subparsers(dest=f"{parent[0]}_command", metavar="ACTION", required=True,
                                                  parser_class=_Parser)
        examples = "".join(f"  {line}\n" for line in cmd.examples.splitlines())
        sub = groups[parent].add_parser(cmd.words[-1], help=cmd.help, description=cmd.help, formatter_class=fmt,
                                        epilog=("examples:\n" if "\n" in cmd.examples else "example:\n") + examples)
        for flags, options in cmd.args:
            sub.add_argument(*flags, **options)
        sub.set_defaults(spec=cmd)
    return p


def main(argv: list[str] | None = None) -> int:
    stdout_closed = guard_std_fds()
    # No pydantic plugins here; skipping their entry-point scan saves ~25 ms on every run.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        code = _dispatch(argv, stdout_closed)
    except SystemExit as exc:  # argparse: --help, --version, a usage error
        code = exc.code if isinstance(exc.code, int) else Exit.USAGE if exc.code else Exit.OK
    except OSError as exc:  # print() to a stdout that is full, closed or read-only (see _dispatch)
        code = stdout_failed(exc)
    try:
        sys.stdout.flush()
    except OSError as exc:
        return stdout_failed(exc)
    return int(code)


def _dispatch(argv: list[str] | None, stdout_closed: bool) -> int:
    args = build_parser().parse_args(argv)
    args.stdout_closed = stdout_closed
    setup(args.log_level, args.log_format, args.log_target)
    if stdout_closed and args.spec.words[0] not in ("run", "simulate"):  # run: the forward output needs none
        log.error("stdout is closed — run the command with stdout open; it changed nothing")
        return Exit.IOERR
    module, function = args.spec.target.split(":")
    try:
        return int(getattr(import_module(f".{module}", __package__), function)(**args.spec.call(args)) or 0)
    except PluginError as exc:
        log.error("%s", exc)
        return int(exc.code)
    except (Interrupted, KeyboardInterrupt):
        return 0
    except Exception as exc:
        if isinstance(exc, OSError) and (exc.errno == errno.EPIPE or (
                exc.errno in (errno.ENOSPC, errno.EBADF, errno.EIO) and stdout_broken())):
            raise  # print() to a stdout that is gone: main() reports it as 74
        log.exception("internal error (please report it)")
        return Exit.SOFTWARE
