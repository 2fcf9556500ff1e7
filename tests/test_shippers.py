"""Issue 4: the conf/ snippets under real shippers, and the forward output."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import msgpack
import pytest

from helpers import IN_CI, Plugin, child_env
from shippers import CONF, PACKAGED_COMMAND, PACKAGED_CONFIG, find_binary, snippet, wrapper

DAY = 86400.0
SYSLOG_NG = find_binary("syslog-ng", "/usr/sbin/syslog-ng")
needs_syslog_ng = pytest.mark.skipif(SYSLOG_NG is None and not IN_CI,
                                     reason="syslog-ng not installed (apt-get install syslog-ng-core)")


def test_every_snippet_names_the_packaged_paths():
    for path in CONF.rglob("*"):
        if path.is_file() and path.name != "config.toml" and "parsers" not in path.name:
            text = path.read_text()
            if "ExecStart" in text or "program(" in text or "exec" in text:
                assert PACKAGED_COMMAND in text and PACKAGED_CONFIG in text, path


def test_snippets_carry_the_shipper_gotchas():
    fb = (CONF / "fluent-bit/anthropic-compliance-input.conf").read_text()
    assert re.search(r"^\s+Threaded\s+On$", fb, re.M) and re.search(r"^\s+Buf_Size\s+4MB$", fb, re.M)
    assert "${" not in fb.split("[INPUT]")[1] and "--max-runtime 50" in fb and "Interval_Sec  60" in fb
    follow = (CONF / "fluent-bit/anthropic-compliance-input-follow.conf").read_text()
    assert "Oneshot       On" in follow and "run --follow" in follow and "Threaded      On" in follow
    parser = (CONF / "fluent-bit/parsers-anthropic-compliance-input.conf").read_text()
    assert "Time_Key    created_at" in parser and "Time_Keep   On" in parser
    vector = (CONF / "vector/anthropic-compliance-input.yaml").read_text()
    assert "include_stderr: false" in vector and "max_length: 4194304" in vector
    assert "parse_timestamp(.created_at" in vector
    sng = (CONF / "syslog-ng/anthropic-compliance-input.conf").read_text()
    assert "flags(no-parse)" in sng and "log-msg-size(4194304)" in sng and "source s_anthropic_compliance {" in sng


class SyslogNg:
    def __init__(self, tmp: Path, source_snippet: str, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.out = tmp / "syslog-ng-out.jsonl"
        self.conf = tmp / "syslog-ng.conf"
        self.conf.write_text("@version: 3.38\n" + source_snippet + f"""
destination d_test {{ file("{self.out}" template("$MSG\\n")); }};
log {{ source(s_anthropic_compliance); destination(d_test); }};
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        t = self.tmp
        self.proc = subprocess.Popen(
            [SYSLOG_NG, "-F", "-f", str(self.conf), f"--persist-file={t}/sng.persist", f"--pidfile={t}/sng.pid",
             f"--control={t}/sng.ctl"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)

    def lines(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            lines = self.lines()
            if len(lines) >= count:
                time.sleep(0.5)  # anything more (a duplicate) would show up now
                return self.lines()
            time.sleep(0.2)
        raise AssertionError(f"syslog-ng wrote {len(self.lines())} of {count} lines")


@needs_syslog_ng
def test_syslog_ng_program_source_delivers_each_activity_exactly_once(plugin: Plugin, model, now, tmp_path):
    model.rate_limit = 100000
    plugin.configure(collect={"settle_delay_seconds": 1, "interval_seconds": 0.5})
    command = wrapper(tmp_path)
    expected = [r["id"] for r in model.generate(500, now - DAY, now - 60)]

    # two scheduled runs: the snippet with `run` instead of `run --follow` (syslog-ng respawns it)
    scheduled = snippet("syslog-ng/anthropic-compliance-input.conf", command, plugin.config_path)
    sng = SyslogNg(tmp_path, scheduled.replace("run --follow", "run"), child_env())
    sng.start()
    sng.wait_for(500)
    expected += [r["id"] for r in model.generate(30, time.time() - 0.5, time.time())]
    sng.wait_for(530)
    sng.stop()
    assert plugin.state()["runs"] >= 2

    # the snippet as shipped (run --follow), restarted once
    sng = SyslogNg(tmp_path, snippet("syslog-ng/anthropic-compliance-input.conf", command, plugin.config_path),
                   child_env())
    sng.start()
    expected += [r["id"] for r in model.generate(40, time.time() - 0.5, time.time())]
    sng.wait_for(570)
    sng.stop()
    expected += [r["id"] for r in model.generate(25, time.time() - 0.5, time.time())]
    sng.start()
    expected += [r["id"] for r in model.generate(1, time.time() - 0.5, time.time(), kind="anthropic_access")]
    got = [r["id"] for r in sng.wait_for(596)]
    sng.stop()
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))
    big = [len(json.dumps(r)) for r in sng.lines()]
    assert max(big) > 200


@needs_syslog_ng
def test_syslog_ng_keeps_a_100kb_activity_line_whole(plugin: Plugin, model, now, tmp_path):
    model.add(model.factory.make(now - 3600, "claude_chat_created", padding="x" * 100_000))
    plugin.configure(collect={"settle_delay_seconds": 1, "interval_seconds": 0.5})
    sng = SyslogNg(tmp_path, snippet("syslog-ng/anthropic-compliance-input.conf", wrapper(tmp_path),
                                     plugin.config_path), child_env())
    sng.start()
    lines = sng.wait_for(1)
    sng.stop()
    assert len(lines) == 1 and len(lines[0]["padding"]) == 100_000


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
        while len(self.events) < count and time.monotonic() < deadline:
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
        frac = record["created_at"].split(".")[1].rstrip("Z")
        assert nsec == int(frac.ljust(9, "0"))  # sub-second precision, no float rounding
        assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) == record["created_at"][:19]


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
