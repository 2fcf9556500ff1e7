"""The forward output (Fluentd Forward protocol) into a minimal receiver: records with created_at as
the event time, a receiver that is down, a unix socket. (Into a real Fluent Bit: test_fluent_bit.py.)"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import msgpack

from anthropic_compliance_input.timeutil import parse_rfc3339
from helpers import Plugin

DAY = 86400.0


class ForwardReceiver:
    """A minimal Forward-protocol listener (msgpack Message mode) that records what arrives."""

    def __init__(self, unix_path: Path | None = None) -> None:
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(str(unix_path))
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = None if unix_path else self.sock.getsockname()[1]
        self.events: list[tuple[str, tuple[int, int], dict]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        def ext(code: int, data: bytes):
            return (int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big")) if code == 0 else data

        unpacker = msgpack.Unpacker(ext_hook=ext, raw=False, strict_map_key=False)
        while chunk := conn.recv(65536):
            unpacker.feed(chunk)
            for tag, when, record in unpacker:
                self.events.append((tag, when, record))

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if time.monotonic() >= deadline:
                ids = [record.get("id") for _, _, record in self.events]
                raise AssertionError(f"forward receiver: waited {timeout} s for {count} events, got "
                                     f"{len(ids)} ({len(set(ids))} distinct ids, the last: {ids[-3:]})")
            time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()


def test_forward_output_sends_records_with_created_at_as_event_time(plugin: Plugin, model, now):
    receiver = ForwardReceiver()
    records = model.generate(250, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    receiver.wait_for(250)
    receiver.close()
    by_id = {r["id"]: r for r in records}
    assert sorted(e[2]["id"] for e in receiver.events) == sorted(by_id)
    for tag, (sec, nsec), record in receiver.events:
        assert tag == "anthropic.activity" and record == by_id[record["id"]]
        text = record["created_at"]  # any RFC 3339 form: whole seconds, 1-9 digits, an offset
        frac = text[20:].rstrip("Z").split("+")[0].split("-")[0] if text[19] == "." else ""
        assert nsec == int(frac.ljust(9, "0") or 0)  # sub-second precision, no float rounding
        assert sec == int(parse_rfc3339(text).timestamp())


def test_forward_output_failure_leaves_the_cursor_where_it_was(plugin: Plugin, model, now):
    model.generate(40, now - DAY, now - 120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed: the receiver is down
    plugin.configure(output={"mode": "forward", "forward_port": port})
    for _ in range(2):
        result = plugin.run()
        assert result.rc == 69 and result.stdout == b""
        assert "forward output 127.0.0.1" in result.stderr and "cursor did not move" in result.stderr
        state = plugin.state()
        assert state["high_water"] == state["origin"] and state["seen"] == 0
        assert state["totals"]["emitted"] == 0 and "forward output" in state["last_error"]

    receiver = ForwardReceiver()  # the receiver comes back: everything arrives
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port})
    assert plugin.run().rc == 0
    time.sleep(0.5)
    assert len({e[2]["id"] for e in receiver.events}) == 40
    receiver.close()


def test_forward_output_over_a_unix_socket(plugin: Plugin, model, now, tmp_path):
    path = tmp_path / "forward.sock"
    receiver = ForwardReceiver(unix_path=path)
    records = model.generate(30, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_host": f"unix://{path}"})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    receiver.wait_for(30)
    receiver.close()
    assert sorted(e[2]["id"] for e in receiver.events) == sorted(r["id"] for r in records)
