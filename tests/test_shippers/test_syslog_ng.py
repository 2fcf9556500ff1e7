"""The syslog-ng snippet under a real syslog-ng: each activity exactly once, a 100 KB line whole."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import IN_CI, Plugin, child_env
from shippers import find_binary, snippet, wrapper

DAY = 86400.0
SYSLOG_NG = find_binary("syslog-ng", "/usr/sbin/syslog-ng")
needs_syslog_ng = pytest.mark.skipif(SYSLOG_NG is None and not IN_CI,
                                     reason="syslog-ng not installed (apt-get install syslog-ng-core)")


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
    sent = {r["id"]: r for r in model.all_records()}
    assert all(line == sent[line["id"]] for line in sng.lines())  # each line the whole record, unchanged


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
