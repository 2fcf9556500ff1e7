"""Where records go: stdout lines (exec inputs), a Fluentd/Fluent Bit forward socket, and the
dead-letter file. A sink takes what it took or raises; the cursor only moves past what it took.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from typing import Any, Callable, Iterable

import orjson

from .config import OutputConfig
from .errors import Exit, PluginError
from .timeutil import epoch_ns, format_rfc3339

BATCH_BYTES = 1 << 16  # one write(2) per 64 KB of lines: a stop lands between batches


def encode(record: Any) -> bytes:
    """Compact JSON, UTF-8, key order as received, one line. orjson is 15x faster than json;
    json takes over for what orjson will not write (integers beyond 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


class DeliveryError(PluginError):
    """The sink did not take the records; the page is not committed."""


class StdoutSink:
    """Lines on fd 1, written in 64 KB batches so that nothing waits in a buffer (whatever
    PYTHONUNBUFFERED says) and a stop request is seen between batches."""

    wants_lines = True

    def __init__(self, fd: int = 1, closed_at_start: bool = False) -> None:
        if closed_at_start:
            raise stdout_error("stdout was closed when the plugin started")
        self.fd = fd

    def write(self, lines: Iterable[bytes], stop: Callable[[], bool]) -> int:
        """Write whole lines; return how many were written (fewer when a stop cut in). Lines are
        consumed lazily: orjson's buffers are 4 KB each, and a page of them would add 20 MB."""
        done, batch, size = 0, [], 0
        for line in lines:
            if size >= BATCH_BYTES:
                self._write_all(b"".join(batch))
                done += len(batch)
                batch, size = [], 0
                if stop():
                    return done
            batch.append(line)
            size += len(line)
        if batch:
            self._write_all(b"".join(batch))
            done += len(batch)
        return done

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a pipe may take part of a large batch
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            raise stdout_error(exc.strerror or str(exc), exc.errno) from None

    def close(self) -> None:
        pass


def stdout_error(why: str, code: int | None = None) -> DeliveryError:
    if code == errno.EPIPE:
        return DeliveryError(Exit.IOERR, "stdout was closed by the reader",
                             "stopping without committing the page in flight; the next run repeats it")
    kind = ""
    try:
        mode = os.fstat(1).st_mode
        kind = " (a pipe)" if stat.S_ISFIFO(mode) else " (a file or device)" if not stat.S_ISSOCK(mode) else ""
    except OSError:
        pass
    return DeliveryError(Exit.IOERR, f"cannot write activity lines to stdout{kind}: {why}",
                         "run the plugin with stdout open for writing to the shipper; nothing was committed")


class ForwardSink:
    """fluent-logger to a forward input. Event time = created_at as EventTime (never a float:
    Fluent Bit drops a float-timed event and the one after it)."""

    wants_lines = False

    def __init__(self, out: OutputConfig) -> None:
        self.out = out
        host = out.forward_host
        self.where = host if host.startswith("unix://") else f"{host}:{out.forward_port}"
        self._dropped: list[str] = []
        self.sender = self._connect()

    def _connect(self) -> Any:
        from fluent import sender

        return sender.FluentSender(
            self.out.forward_tag, host=self.out.forward_host, port=self.out.forward_port,
            timeout=self.out.forward_timeout_seconds, nanosecond_precision=True,
            bufmax=0,  # never keep unsent bytes to send later behind the cursor's back
            buffer_overflow_handler=lambda pendings: self._dropped.append(f"{len(pendings)} bytes"),
            forward_packet_error=False,
        )

    def write(self, records: list[tuple[Any, float | None, Any]], stop: Callable[[], bool]) -> int:
        """`records`: (record, created_at as epoch seconds or None, created_at) triples."""
        from fluent.sender import EventTime

        for done, (record, _, created_at) in enumerate(records):
            if done and stop():
                return done
            try:
                seconds, nanos = epoch_ns(created_at)
            except (KeyError, TypeError, ValueError, OverflowError):
                seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
            ok, error = self._emit(EventTime(seconds, nanos), record)
            if not ok and isinstance(error, (OverflowError, ValueError, TypeError)):
                from .forward import packable  # valid JSON msgpack cannot carry as it is

                self.sender.clear_last_error()
                ok, error = self._emit(EventTime(seconds, nanos), packable(record))
            if not ok:
                self.sender.clear_last_error()
                self.sender.close()  # a fresh connection for the next attempt, nothing pending
                self.sender = self._connect()
                reason = f"{type(error).__name__}: {error}" if error else "not sent"
                raise DeliveryError(Exit.UNAVAILABLE, f"forward output {self.where} failed: {reason}",
                                    "check that the Fluentd/Fluent Bit forward input is up; the cursor did not move")
        return len(records)

    def _emit(self, when: Any, record: Any) -> tuple[bool, Any]:
        try:
            ok = self.sender.emit_with_time(None, when, record)
            return ok, self.sender.last_error
        except Exception as exc:  # forward_packet_error=False: unserialisable records raise
            return False, exc

    def close(self) -> None:
        self.sender.close()


Sink = Any  # StdoutSink (lines), ForwardSink or forward.AckedForwardSink (records with their event time)


def make_sink(cfg: Any, stdout_closed: bool = False, waiting: Any = None) -> Sink:
    """`cfg`: the whole Config (the acknowledged sender retries with the [api] policy)."""
    out = cfg.output
    if out.mode != "forward":
        return StdoutSink(closed_at_start=stdout_closed)
    if not out.forward_require_ack:
        return ForwardSink(out)
    from .forward import AckedForwardSink

    return AckedForwardSink(out, waiting, cfg.api.max_retries, cfg.api.retry_backoff_seconds)


class RejectFile:
    """`<state>.rejected.jsonl`: records that fail the schema, whole, with the reason (0600)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = path
        self._fh: Any = None

    def write(self, rejects: list[tuple[Any, str]]) -> None:
        """Append and fsync: durable before the cursor moves past the rejected records."""
        if not rejects:
            return
        from .errors import disk_error

        try:
            if self._fh is None:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                self._fh = os.fdopen(fd, "ab")
            stamp = format_rfc3339(time.time())
            self._fh.write(b"".join(encode({"rejected_at": stamp, "reason": reason, "activity": record})
                                    for record, reason in rejects))
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            self.close()
            raise disk_error(exc, f"cannot write the dead-letter file {self.path}") from None

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass  # what could not be flushed was never synced, so never committed
            self._fh = None
