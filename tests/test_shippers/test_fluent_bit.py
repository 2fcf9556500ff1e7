"""The Fluent Bit snippets under a real fluent-bit (FLUENT_BIT_BIN=/path/to/fluent-bit).

Fluent Bit is not in the package registries this project's CI can reach, so these run when
FLUENT_BIT_BIN points to a binary and are skipped, with that reason, otherwise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import Plugin, child_env
from shippers import CONF, snippet, wrapper

from anthropic_compliance_input.timeutil import epoch

DAY = 86400.0
FLUENT_BIT = os.environ.get("FLUENT_BIT_BIN")
pytestmark = pytest.mark.skipif(not FLUENT_BIT, reason="set FLUENT_BIT_BIN to a fluent-bit binary to run these")


class FluentBit:
    def __init__(self, tmp: Path, body: str, yaml: bool = False, service: str = "") -> None:
        self.out = tmp / "fb-out"
        self.out.mkdir(exist_ok=True)
        if yaml:
            self.conf = tmp / "fluent-bit.yaml"
            self.conf.write_text("service:\n  flush: 1\n  grace: 1\n  log_level: info\n" + body + f"""
  outputs:
    - name: file
      match: anthropic.activity
      path: {self.out}
      file: records.plain
      format: plain
    - name: file
      match: anthropic.activity
      path: {self.out}
      file: records.timed
""")
        else:
            self.conf = tmp / "fluent-bit.conf"
            self.conf.write_text(f"""[SERVICE]
    Flush         1
    Grace         1
    Log_Level     info
    Parsers_File  {CONF / 'fluent-bit/parsers-anthropic-compliance-input.conf'}
{service}

{body}

[OUTPUT]
    Name    file
    Match   anthropic.activity
    Path    {self.out}
    File    records.plain
    Format  plain

[OUTPUT]
    Name    file
    Match   anthropic.activity
    Path    {self.out}
    File    records.timed
""")
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "fluent-bit.log"

    def start(self) -> None:
        self.proc = subprocess.Popen([FLUENT_BIT, "-c", str(self.conf)], env=child_env(),
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def records(self) -> list[dict]:
        """Whole lines only: Fluent Bit may be half way through writing the last one."""
        path = self.out / "records.plain"
        return [json.loads(line) for line in path.read_text().split("\n")[:-1]] if path.exists() else []

    def timed(self) -> list[tuple[float, dict]]:
        path = self.out / "records.timed"
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            match = re.match(r"^anthropic\.activity: \[([\d.]+), (.*)\]$", line)
            assert match, line
            out.append((float(match.group(1)), json.loads(match.group(2))))
        return out

    def wait_for(self, count: int, timeout: float = 60) -> list[dict]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.records()) >= count:
                time.sleep(2)
                return self.records()
            time.sleep(0.3)
        raise AssertionError(f"{len(self.records())} of {count} records; log:\n{self.log.read_text()[-3000:]}")


def _check_records(fb: FluentBit, expected: dict[str, dict]) -> None:
    got = fb.records()
    assert sorted(r["id"] for r in got) == sorted(expected)  # each exactly once
    for record in got:
        assert record == expected[record["id"]]  # nothing added, nothing lost (created_at kept)
    for stamp, record in fb.timed():
        created = epoch(record["created_at"])
        assert abs(stamp - created) < 1e-3, (stamp, record["created_at"])  # event time = created_at


def _scheduled(plugin: Plugin, tmp: Path) -> str:
    text = snippet("fluent-bit/anthropic-compliance-input.conf", wrapper(tmp), plugin.config_path)
    return text.replace("Interval_Sec  60", "Interval_Sec  2").replace("--max-runtime 50", "--max-runtime 1.5")


def test_scheduled_run_snippet_with_a_20kb_line(plugin: Plugin, model, now, tmp_path):
    records = model.generate(300, now - DAY, now - 120)
    records.append(model.add(model.factory.make(now - 600, "claude_chat_created", note="x" * 20_000)))
    plugin.configure(collect={"settle_delay_seconds": 1})
    fb = FluentBit(tmp_path, _scheduled(plugin, tmp_path))
    fb.start()
    fb.wait_for(301)
    new = model.generate(20, time.time() - 0.5, time.time())
    fb.wait_for(321)
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records + new})


def test_event_time_is_created_at_in_every_rfc3339_form(plugin: Plugin, model, now, tmp_path):
    """Whole seconds (as the API docs show it), 1-9 fraction digits, Z or an offset: the
    parser's event time is the instant created_at names, and the record is unchanged."""
    import random

    from anthropic_compliance_input.simulator.factory import format_created

    rng, base = random.Random(7), int(now) - 3600
    records = []
    for i, form in enumerate(("whole", "tenths", "millis", "micros", "nanos", "offset")):
        moment = base + i + (0 if form == "whole" else 0.5 if form == "tenths" else 0.123456)
        record = model.factory.make(moment)
        if form != "micros":
            record["created_at"] = format_created(moment, form, rng)
        records.append(model.add(record))
    assert [r["created_at"][19:] for r in records] == ["Z", ".5Z", ".123Z", ".123456Z", records[4]["created_at"][19:],
                                                      ".123456+02:00"] and len(records[4]["created_at"]) == 30
    records += model.generate(300, now - DAY, now - 120)  # with the simulator's mix of forms
    plugin.configure(collect={"settle_delay_seconds": 1})
    fb = FluentBit(tmp_path, _scheduled(plugin, tmp_path))
    fb.start()
    fb.wait_for(len(records))
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records})
    for stamp, record in fb.timed():
        assert abs(stamp - epoch(record["created_at"])) < 2e-6, (stamp, record["created_at"])


def test_ecs_format_through_the_snippet_keeps_the_event_time(plugin: Plugin, model, now, tmp_path):
    """run --format ecs with the snippet's ECS parser: every document once, its event time the
    instant of @timestamp, which is created_at to the millisecond."""
    records = model.generate(300, now - DAY, now - 120)
    plugin.configure(collect={"settle_delay_seconds": 1})
    body = _scheduled(plugin, tmp_path).replace(" run --max-runtime", " run --format ecs --max-runtime")
    fb = FluentBit(tmp_path, body.replace("Parser        anthropic_activity", "Parser        anthropic_activity_ecs"))
    fb.start()
    fb.wait_for(len(records))
    fb.stop()
    created = {r["id"]: r["created_at"] for r in records}
    got = fb.timed()
    assert sorted(doc["event"]["id"] for _, doc in got) == sorted(created)
    for stamp, doc in got:
        instant = epoch(created[doc["event"]["id"]])
        assert abs(stamp - instant) < 1e-3 and abs(epoch(doc["@timestamp"]) - instant) < 1e-3, (stamp, doc["@timestamp"])


def test_follow_snippet_streams_and_stops_with_fluent_bit(plugin: Plugin, model, now, tmp_path):
    records = model.generate(200, now - DAY, now - 120)
    plugin.configure(collect={"settle_delay_seconds": 1, "interval_seconds": 0.5})
    body = snippet("fluent-bit/anthropic-compliance-input-follow.conf", wrapper(tmp_path), plugin.config_path)
    fb = FluentBit(tmp_path, body)
    fb.start()
    fb.wait_for(200)
    new = model.generate(15, time.time() - 0.5, time.time())
    fb.wait_for(215)
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records + new})
    alive = subprocess.run(["pgrep", "-f", f"{plugin.config_path} run --follow"], capture_output=True)
    assert alive.stdout == b""  # Fluent Bit's SIGTERM reached the collector
    assert plugin.state()["totals"]["emitted"] == 215  # the state is SQLite now: read it through `state show`


def test_yaml_snippet(plugin: Plugin, model, now, tmp_path):
    records = model.generate(50, now - DAY, now - 120)
    body = snippet("fluent-bit/anthropic-compliance-input.yaml", wrapper(tmp_path), plugin.config_path)
    body = body.replace("interval_sec: 60", "interval_sec: 2").replace("--max-runtime 50", "--max-runtime 1.5")
    fb = FluentBit(tmp_path, "\n".join(l for l in body.splitlines() if not l.startswith("#")), yaml=True)
    fb.start()
    fb.wait_for(50)
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records})


def test_forward_output_into_fluent_bit_forward_input(plugin: Plugin, model, now, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    records = model.generate(120, now - DAY, now - 120)
    fb = FluentBit(tmp_path, f"[INPUT]\n    Name    forward\n    Listen  127.0.0.1\n    Port    {port}\n")
    fb.start()
    time.sleep(1.5)
    plugin.configure(output={"mode": "forward", "forward_port": port})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b""
    fb.wait_for(120)
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records})


def _forward_snippet(tmp: Path) -> tuple[str, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = (CONF / "fluent-bit/anthropic-compliance-input-forward.conf").read_text()
    assert "storage.type      filesystem" in text and "Port              24224" in text
    return text.replace("Port              24224", f"Port              {port}"), port


def test_acknowledged_forward_into_the_forward_snippet(plugin: Plugin, model, now, tmp_path):
    """10,000 activities through the acknowledged forward output into the shipped forward input:
    each once, the event time equal to created_at."""
    body, port = _forward_snippet(tmp_path)
    fb = FluentBit(tmp_path, body, service=f"    storage.path  {tmp_path / 'storage'}")
    fb.start()
    time.sleep(1.5)
    records = model.generate(10_000, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_port": port})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    fb.wait_for(10_000)
    fb.stop()
    _check_records(fb, {r["id"]: r for r in records})
    for stamp, record in fb.timed():
        assert abs(stamp - epoch(record["created_at"])) < 2e-6, (stamp, record["created_at"])


def test_acknowledged_forward_survives_fluent_bit_killed_mid_stream(plugin: Plugin, model, now, tmp_path):
    """kill -9 while chunks flow; restarted on its filesystem storage; the plugin's next runs:
    every activity is in the output at least once."""
    body, port = _forward_snippet(tmp_path)
    service = f"    storage.path  {tmp_path / 'storage'}"
    records = model.generate(20_000, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_port": port, "forward_chunk_max_bytes": 262144,
                             "forward_ack_timeout_seconds": 2}, api={"page_size": 1000, "max_retries": 2})
    fb = FluentBit(tmp_path, body, service=service)
    fb.start()
    time.sleep(1.5)
    sender = plugin.start("run", stdout=subprocess.DEVNULL)
    storage = tmp_path / "storage"
    deadline = time.monotonic() + 30
    while not list(storage.rglob("*.flb")) and time.monotonic() < deadline:  # acked chunks on disk
        time.sleep(0.01)
    fb.proc.kill()  # with chunks acked and stored but not yet all flushed to the output
    fb.proc.wait()
    before = {r["id"] for r in fb.records()}  # (the line it was writing when killed is cut)
    assert len(before) < 20_000
    sender.communicate(timeout=120)  # it gives up (69) or finished: either way the cursor is honest
    (tmp_path / "after").mkdir()
    fb = FluentBit(tmp_path / "after", body, service=service)  # the same storage, a new output file
    fb.start()
    time.sleep(1.5)
    for _ in range(3):
        if plugin.run().rc == 0:
            break
    expected = {r["id"] for r in records}
    deadline = time.monotonic() + 90
    while before | {r["id"] for r in fb.records()} != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    fb.stop()
    assert before | {r["id"] for r in fb.records()} == expected  # none missing (some may be there twice)
