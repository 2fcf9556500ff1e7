"""A Forward-protocol receiver for tests: Message mode and Forward mode with chunk/ack, and the
ways a real receiver fails to acknowledge (never, with another id, a connection closed half way
through a chunk, an ack later than the sender waits)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import msgpack

BEHAVIOURS = ("ack", "never", "wrong-id", "close-half-way", "late", "garbage", "no-read")


class ForwardReceiver:
    def __init__(self, unix_path: Path | None = None, script: list[str] | None = None, late: float = 3.0) -> None:
        """`script`: how to treat each chunk in turn (then "ack" for the rest)."""
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(str(unix_path))
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = None if unix_path else self.sock.getsockname()[1]
        self.script, self.late = list(script or []), late
        self.events: list[tuple[str, tuple[int, int], dict]] = []  # every event that arrived
        self.acked: list[str] = []  # the ids of events in acknowledged chunks
        self.chunks: list[str] = []  # every chunk id that arrived, resends included
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _next(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ack"

    def _read(self, conn: socket.socket) -> None:
        def ext(code: int, data: bytes):
            return (int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big")) if code == 0 else data

        unpacker = msgpack.Unpacker(ext_hook=ext, raw=False, strict_map_key=False, max_buffer_size=64 << 20)
        mid_message = False  # the sender waits for each ack: a chunk starts with a fresh recv
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if not mid_message and self.script and self.script[0] == "close-half-way":
                    self._next()
                    return  # read the start of the chunk, then hang up
                if self.script and self.script[0] == "no-read":
                    time.sleep(3600)  # accepts, then never reads: the sender's socket buffers fill
                unpacker.feed(data)
                mid_message = True
                for message in unpacker:
                    mid_message = False
                    if not self._handle(conn, message):
                        return

    def _handle(self, conn: socket.socket, message: list) -> bool:
        tag = message[0]
        if not isinstance(message[1], list):  # Message mode: [tag, time, record]
            self.events.append((tag, message[1], message[2]))
            return True
        entries, option = message[1], (message[2] if len(message) > 2 else {}) or {}
        self.events.extend((tag, when, record) for when, record in entries)
        chunk = option.get("chunk")
        if chunk is None:
            return True
        self.chunks.append(chunk)
        behaviour = self._next()
        if behaviour == "never":
            return True
        if behaviour == "late":
            time.sleep(self.late)
        if behaviour == "garbage":  # not msgpack at all (0xc1 is never used)
            conn.sendall(b"\xc1\xc1\xc1")
            return True
        answer = {"ack": chunk if behaviour != "wrong-id" else "not-" + chunk}
        try:
            conn.sendall(msgpack.packb(answer))
        except OSError:
            return False
        if behaviour in ("ack", "late"):
            self.acked.extend(record.get("id") for _, record in entries)
        return True

    def ids(self) -> list[str]:
        return [record.get("id") for _, _, record in self.events]

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if time.monotonic() >= deadline:
                ids = self.ids()
                raise AssertionError(f"forward receiver: waited {timeout} s for {count} events, got "
                                     f"{len(ids)} ({len(set(ids))} distinct ids)")
            time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()
