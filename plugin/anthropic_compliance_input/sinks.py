"""Where records go: stdout lines (exec inputs), a Fluentd/Fluent Bit forward socket, and the
dead-letter file. A sink either takes a record or raises; the cursor only moves past what it took.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Protocol

import orjson

from .config import OutputConfig
from .errors import Exit, PluginError
from .timeutil import format_rfc3339, parse_rfc3339


def encode(record: Any) -> bytes:
    """Compact JSON, UTF-8, key order as received, one line. orjson is 15x faster than json;
    json takes over for what orjson will not write (integers beyond 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


class DeliveryError(PluginError):
    """The forward receiver did not take a record; the page is not committed."""


class OutputClosed(Exception):
    """The reader of stdout went away (EPIPE): stop without committing."""


class Sink(Protocol):
    def emit(self, record: dict[str, Any], line: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class StdoutSink:
    """One write(2) per line on fd 1, so nothing waits in a buffer, whatever PYTHONUNBUFFERED says."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd

    def emit(self, record: dict[str, Any], line: bytes) -> None:
        try:
            written = os.write(self.fd, line)
            if written < len(line):  # a pipe may take part of a large line
                view = memoryview(line)[written:]
                while view:
                    view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            raise OutputClosed("stdout closed by the reader") from None

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class ForwardSink:
    """fluent-logger to a forward input. Event time = created_at as EventTime (never a float:
    Fluent Bit drops a float-timed event and the one after it)."""

    def __init__(self, out: OutputConfig) -> None:
        from fluent import sender

        self._errors: list[str] = []
        host = out.forward_host
        self.sender = sender.FluentSender(
            out.forward_tag,
            host=host,
            port=out.forward_port,
            timeout=out.forward_timeout_seconds,
            nanosecond_precision=True,
            buffer_overflow_handler=self._overflow,
            forward_packet_error=False,
        )
        self.where = host if host.startswith("unix://") else f"{host}:{out.forward_port}"

    def _overflow(self, pendings: bytes) -> None:
        self._errors.append(f"{len(pendings)} buffered bytes dropped by fluent-logger")

    def emit(self, record: dict[str, Any], line: bytes) -> None:
        from fluent.sender import EventTime

        try:
            moment = parse_rfc3339(record["created_at"])
            seconds, nanos = int(moment.timestamp()), moment.microsecond * 1000
        except (KeyError, TypeError, ValueError):
            now = time.time_ns()
            seconds, nanos = divmod(now, 1_000_000_000)
        try:
            ok = self.sender.emit_with_time(None, EventTime(seconds, nanos), record)
        except Exception as exc:  # forward_packet_error=False: unserialisable records raise
            self.sender.last_error = exc
            ok = False
        if not ok or self._errors or self.sender.pendings:
            error = self.sender.last_error
            self.sender.clear_last_error()
            reason = "; ".join(self._errors) or (f"{type(error).__name__}: {error}" if error else "not sent")
            self._errors.clear()
            self.sender.pendings = None  # never resend later behind the cursor's back
            raise DeliveryError(Exit.UNAVAILABLE, f"forward output {self.where} failed: {reason}",
                              "check that the Fluentd/Fluent Bit forward input is up; the cursor did not move")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.sender.close()


def make_sink(out: OutputConfig) -> Sink:
    return ForwardSink(out) if out.mode == "forward" else StdoutSink()


class RejectFile:
    """`<state>.rejected.jsonl`: records that fail the schema, whole, with the reason (0600)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = path
        self._fh = None
        self.count = 0

    def add(self, record: Any, reason: str) -> None:
        if self._fh is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self._fh = os.fdopen(fd, "ab")
        doc = {"rejected_at": format_rfc3339(time.time()), "reason": reason, "activity": record}
        self._fh.write(encode(doc))
        self.count += 1

    def sync(self) -> None:
        """Durable before the cursor moves past the rejected records."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
