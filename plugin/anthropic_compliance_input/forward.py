"""Acknowledged delivery over the Fluent forward protocol: the cursor moves only when the
receiver (Fluent Bit's or Fluentd's `forward` input, Vector's `fluent` source) has the records.

Each page goes out as Forward-mode messages, `[tag, [[EventTime, record], ...], {"chunk": id,
"size": n}]`, of at most forward_chunk_max_bytes each; each waits for `{"ack": id}`. No ack (a
timeout, a closed connection, another id): reconnect and send the same chunk with the same id
again (the receiver may get it twice: at least once, never a gap), backing off as urllib3's
Retry does, within a time budget so that a plain run ends (exit 69) in under two minutes.

fluent-logger has no read side for acks and packs one Message-mode event per record; this is
the small sender it would take to extend it. A chunk is packed by ormsgpack in one call (msgpack,
fluent-logger's dependency, reads the acks and packs what ormsgpack refuses).
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Iterable, Iterator

import msgpack
import ormsgpack
from urllib3.util.retry import Retry

from .config import OutputConfig
from .errors import Exit
from .logs import log
from .sinks import DeliveryError
from .timeutil import epoch_ns

GIVE_UP_AFTER = 90.0  # seconds of failed attempts on one chunk; three 30 s ack timeouts fit


_SECONDS_NANOS = struct.Struct(">II").pack  # EventTime's payload: big-endian seconds, nanoseconds
_EVENT_TIME = 0  # its msgpack ext type


def event_time(text: Any, created: float | None = None) -> ormsgpack.Ext:
    """EventTime: created_at (`text`) to the nanosecond; a float would lose it, and Fluent Bit
    drops a float-timed event together with the one after it. `created`: the plan's epoch for
    it, exact to the microsecond, which is all the API's own form (…:00.123456Z) carries."""
    if created is not None and type(text) is str and len(text) <= 27 and text[-1:] == "Z":
        seconds, micros = divmod(round(created * 1_000_000), 1_000_000)
        return ormsgpack.Ext(_EVENT_TIME, _SECONDS_NANOS(seconds & 0xFFFFFFFF, micros * 1000))
    try:
        seconds, nanos = epoch_ns(text)
    except (KeyError, TypeError, ValueError, OverflowError):
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return ormsgpack.Ext(_EVENT_TIME, _SECONDS_NANOS(seconds & 0xFFFFFFFF, nanos))


def entries(records: Iterable[tuple[Any, float | None, Any]]) -> list[tuple[Any, Any]]:
    """[(EventTime, record), ...] from (record, created epoch, created_at text) triples: the hot
    loop of this output, so event_time's common case is inlined (a call per record costs a
    tenth of what the whole entry does). The record may be ECS or OCSF: the time is created_at."""
    out: list[tuple[Any, Any]] = []
    append, ext = out.append, ormsgpack.Ext
    for record, created, text in records:
        if created is not None and type(text) is str and len(text) <= 27 and text[-1] == "Z":
            seconds, micros = divmod(round(created * 1_000_000), 1_000_000)
            append((ext(_EVENT_TIME, _SECONDS_NANOS(seconds & 0xFFFFFFFF, micros * 1000)), record))
        else:
            append((event_time(text, created), record))
    return out


def pack_message(tag: str, part: list[tuple[Any, Any]], chunk: str) -> bytes:
    """One Forward-mode message, packed by ormsgpack in one call (msgpack's Packer takes twice
    as long per record, which made this output slower than stdout). A record it refuses
    (integers beyond 64 bits, lone surrogates, nesting beyond its depth limit) sends this part
    the slow way, entry by entry."""
    option = {"chunk": chunk, "size": len(part)}
    try:
        return ormsgpack.packb([tag, part, option])
    except TypeError:
        packer = msgpack.Packer(use_bin_type=True)
        return b"".join([packer.pack_array_header(3), packer.pack(tag), packer.pack_array_header(len(part)),
                         *(_pack_entry(packer, time_, record) for time_, record in part), packer.pack(option)])


def _pack_entry(packer: msgpack.Packer, time_: ormsgpack.Ext, record: Any) -> bytes:
    head = b"\x92" + ormsgpack.packb(time_)  # [EventTime, record]: an array of two
    try:
        return head + packer.pack(record)
    except (OverflowError, ValueError, TypeError):  # (UnicodeEncodeError is a ValueError)
        return head + packer.pack(packable(record))


def packable(record: Any) -> Any:
    """The record as msgpack can carry it, said in the log: both forward senders send it so
    rather than stall the page on a record that is valid JSON."""
    log.warning("activity %s: sent with integers beyond 64 bits as strings and invalid Unicode escaped "
                "(msgpack cannot carry them as they are)", _record_id(record))
    return _packable(record)


def _record_id(record: Any) -> Any:
    """The id in any output format: raw `id`, ECS `event.id`, OCSF `metadata.uid`."""
    if type(record) is dict:
        return record.get("id") or (record.get("event") or {}).get("id") or (record.get("metadata") or {}).get("uid")
    return "?"


def _packable(value: Any) -> Any:
    """What msgpack can carry: an integer beyond 64 bits as its digits, a string with a lone
    surrogate (valid JSON, invalid UTF-8) with it escaped as JSON would write it."""
    if type(value) is dict:
        return {_packable(k): _packable(v) for k, v in value.items()}
    if type(value) is list:
        return [_packable(v) for v in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        return str(value)
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return value


class AckedForwardSink:
    wants_lines = False

    def __init__(self, out: OutputConfig, waiting: Callable[[], AbstractContextManager[None]] | None = None,
                 max_retries: int = 8, backoff: float = 0.5) -> None:
        """`waiting`: marks the ack wait as a stretch a stop may cut short (Stopper.waiting)."""
        self.out = out
        self.waiting = waiting or nullcontext
        host = out.forward_host
        self.where = host if host.startswith("unix://") else f"{host}:{out.forward_port}"
        self.max_retries, self.backoff = max_retries, backoff
        self.failing: str | None = None  # a chunk being retried right now: why
        self.acked: deque[str] = deque(maxlen=64)  # a repeated ack for one of these is not an error
        self.sock: socket.socket | None = None
        self.unpacker = msgpack.Unpacker(raw=False)

    def write(self, records: list[tuple[Any, float | None, Any]], stop: Callable[[], bool]) -> int:
        """Send the page, (record, created_at epoch or None, created_at) triples, chunk by chunk; returns how
        many records the receiver acknowledged (fewer when a stop cut in between chunks);
        raises DeliveryError when it gives up."""
        done = 0
        for chunk, message, count in self._chunks(records):
            if done and stop():
                return done
            self._deliver(chunk, message)
            done += count
        return done

    def _chunks(self, records: Iterable[tuple[Any, float | None, Any]]) -> Iterator[tuple[str, bytes, int]]:
        """The page as messages of at most forward_chunk_max_bytes: packed whole, and when that
        is too large, in parts sized from what the whole took (a part still too large is
        halved; one entry above the limit still goes, alone)."""
        todo = entries(records)
        limit, tag = self.out.forward_chunk_max_bytes, self.out.forward_tag
        start, step = 0, len(todo)
        while start < len(todo):
            part = todo[start:start + step]
            chunk = base64.b64encode(os.urandom(16)).decode()  # unique per chunk, kept for resends
            message = pack_message(tag, part, chunk)
            if len(message) > limit and len(part) > 1:
                step = max(1, min(len(part) // 2, int(len(part) * limit / len(message) * 0.95)))
                continue
            yield chunk, message, len(part)
            start += len(part)

    def _deliver(self, chunk: str, message: bytes) -> None:
        retry = Retry(total=self.max_retries, backoff_factor=self.backoff, backoff_max=30,
                      backoff_jitter=self.backoff)
        started = time.monotonic()
        while True:
            try:
                self._send_and_wait(message, chunk)
                self.failing = None
                self.acked.append(chunk)
                return
            except (OSError, ValueError, msgpack.UnpackException) as exc:  # an answer that is not msgpack
                self.close()
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.failing = f"chunk not acknowledged: {problem}"
            try:
                retry = retry.increment()
            except Exception:
                retry = None
            if retry is None or time.monotonic() - started > GIVE_UP_AFTER:
                big = (f" (a chunk of {len(message):,} bytes, larger than forward_chunk_max_bytes because one "
                       "activity is: raise the receiver's limit, e.g. Fluent Bit's Buffer_Max_Size)"
                       if len(message) > self.out.forward_chunk_max_bytes else "")
                raise DeliveryError(Exit.UNAVAILABLE, f"forward output {self.where}: chunk {chunk} not "
                                    f"acknowledged: {problem}{big}", "check that the forward input is up and "
                                    "answers acks; the cursor did not move past the unacknowledged records", "network")
            log.warning("forward output %s: chunk not acknowledged (%s); sending it again (retry %d)", self.where,
                        problem, len(retry.history))
            with self.waiting():
                retry.sleep()

    def _send_and_wait(self, message: bytes, chunk: str) -> None:
        """Connect, send and wait, all cut short at once by a stop: nothing is committed then."""
        with self.waiting():
            sock = self.sock or self._connect()
            sock.settimeout(self.out.forward_timeout_seconds)
            sock.sendall(message)
            deadline = time.monotonic() + self.out.forward_ack_timeout_seconds
            while True:
                for answer in self.unpacker:
                    ack = answer.get("ack") if isinstance(answer, dict) else None
                    if ack == chunk:
                        return
                    if ack not in self.acked:  # (an ack repeated for an earlier chunk is harmless)
                        raise ConnectionError(f"an answer that is not the ack for this chunk: {answer!r:.100}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no ack within {self.out.forward_ack_timeout_seconds:g}s")
                sock.settimeout(left)
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    raise TimeoutError(f"no ack within {self.out.forward_ack_timeout_seconds:g}s") from None
                if not data:
                    raise ConnectionError("the receiver closed the connection before acknowledging")
                self.unpacker.feed(data)

    def _connect(self) -> socket.socket:
        host = self.out.forward_host
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.out.forward_timeout_seconds)
            sock.connect(host[len("unix://"):])
        else:
            sock = socket.create_connection((host, self.out.forward_port), timeout=self.out.forward_timeout_seconds)
        # no stale answer from before; an ack is a small map: bound what a broken receiver can make us hold
        self.sock = sock
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 20)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

