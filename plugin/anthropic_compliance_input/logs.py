"""Logging: one line per event, text or JSON, with every known secret redacted, to stderr, the
local syslog socket or a file.

Vector (`include_stderr: false`), Fluentd's in_exec and syslog-ng's program() throw a child's
stderr away; `--log-target syslog` or `file:PATH` is how an operator sees errors there.
Redaction sits in the formatter, so it covers messages, arguments and formatted tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

log = logging.getLogger("anthropic_compliance_input")
_secrets: set[str] = set()
IDENT = "anthropic-compliance-input"
SYSLOG_SOCKET = "/dev/log"  # journald reads it too; tests and chroots point elsewhere:
SYSLOG_SOCKET_ENV = "ANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET"
TARGET_HELP = "stderr (default), syslog (/dev/log, facility daemon) or file:PATH (appended, reopened after logrotate)"


def register_secret(value: str) -> None:
    if value and len(value) >= 8:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f] if c != 0x09} | {0x0a: "\\n", 0x0d: "\\r"}


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str, stamped: bool = True) -> None:
        super().__init__()
        self.fmt = fmt
        self.stamped = stamped  # syslog adds its own time, level and ident

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.fmt != "json":  # an id or a config value with a newline must not forge a log line
            message = message.translate(_CONTROL)
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = redact(message)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        if self.fmt == "json":
            doc = {"time": stamp, "level": record.levelname.lower(), "message": message}
            doc.update(getattr(record, "fields", {}))
            return json.dumps(doc, separators=(",", ":"), default=str)
        return f"{stamp} {record.levelname} {message}" if self.stamped else message


class _OneLineErrors:
    """A handler that cannot write says so on stderr, with the message it could not write,
    in one line, not logging's traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        exc = sys.exc_info()[1]
        try:
            message = redact(record.getMessage()).replace("\n", " ")
            sys.stderr.write(f"{IDENT}: cannot write the log ({exc}): {record.levelname} {message}\n")
        except (OSError, ValueError):
            pass


class _Stderr(_OneLineErrors, logging.StreamHandler):  # type: ignore[type-arg]
    pass


def _handler(target: str, fmt: str) -> logging.Handler:
    """Raises ValueError with a one-line reason for a target that cannot be used."""
    if target == "stderr":
        handler: logging.Handler = _Stderr(sys.stderr)
        handler.setFormatter(_Formatter(fmt))
    else:
        check_target(target)
        from .log_targets import open_target  # logging.handlers costs every run ~7 ms: only when used

        handler = open_target(target)
        handler.setFormatter(_Formatter(fmt, stamped=target != "syslog"))  # syslog stamps its own
    return handler


def check_target(target: str) -> str:
    """For config validation: the syntax only (the socket or file may appear later)."""
    if target in ("stderr", "syslog") or (target.startswith("file:") and target[5:].strip()):
        return target
    raise ValueError(f"{target!r} is not a log target: use {TARGET_HELP}")


_current: dict[str, Any] = {"level": "info", "format": "text", "target": "stderr", "explicit": False}


def setup(level: str = "info", fmt: str = "text", target: str | None = None) -> None:
    """`target` None: stderr until a config's [log] target says otherwise (see use_config_target)."""
    chosen = target or "stderr"
    try:
        handler = _handler(chosen, fmt)
    except ValueError as exc:
        handler = _handler("stderr", fmt)
        handler.handle(logging.makeLogRecord({"msg": f"--log-target: {exc}; logging to stderr",
                                              "levelno": logging.ERROR, "levelname": "ERROR"}))
        chosen = "stderr"
    _current.update(level=level, format=fmt, target=chosen, explicit=target is not None)
    _install(handler, level)


def use_config_target(target: str | None) -> None:
    """[log] target applies unless --log-target was given; a target that cannot be opened now
    is reported on the current one (stderr) and the run goes on there."""
    if not target or _current["explicit"] or target == _current["target"]:
        return
    try:
        handler = _handler(target, _current["format"])
    except ValueError as exc:
        if _current.get("failed") != target:  # --follow retries: say it once
            log.error("[log] target: %s; logging to %s", exc, _current["target"])
        _current["failed"] = target
        return
    _current["target"] = target
    _install(handler, _current["level"])


def reopen() -> None:
    """SIGHUP: a log file moved by logrotate is reopened at its name."""
    for handler in log.handlers:
        if hasattr(handler, "reopen"):
            handler.reopen()


def _install(handler: logging.Handler, level: str) -> None:
    for old in log.handlers:
        if old is not handler and not isinstance(old, _Stderr):
            old.close()
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    # urllib3 repeats every retry the client already logs; keep its detail for debug only,
    # through the same redacting handler.
    ulog = logging.getLogger("urllib3")
    ulog.handlers[:] = [handler]
    ulog.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.ERROR)
    ulog.propagate = False
