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


@needs_syslog_ng
def test_syslog_ng_with_no_key_does_not_spin_and_says_why_until_a_key_arrives(plugin: Plugin, model, now,
                                                                                 tmp_path):
    """No key anywhere: syslog-ng's program() would restart an exiting child at once. The plugin
    stays up, says so in the system log (syslog-ng's own /dev/log stand-in) and in the metrics,
    and picks the key up without a restart of syslog-ng."""
    from prometheus_client.parser import text_string_to_metric_families

    from helpers import KEY

    expected = [r["id"] for r in model.generate(50, now - DAY, now - 60)]
    metrics = tmp_path / "health.prom"
    settings = dict(collect={"settle_delay_seconds": 1, "interval_seconds": 5}, metrics={"textfile": str(metrics)})
    plugin.configure(**settings)
    starts = tmp_path / "starts"
    command = tmp_path / "counting-wrapper"
    command.write_text(f"#!/bin/sh\necho start >> {starts}\nexec {wrapper(tmp_path)} \"$@\"\n")
    command.chmod(0o755)
    socket = tmp_path / "log"
    source = snippet("syslog-ng/anthropic-compliance-input.conf", command, plugin.config_path)
    assert "--log-target syslog" in source
    syslog = tmp_path / "syslog.log"
    source += f"""
source s_devlog {{ unix-dgram("{socket}"); }};
destination d_syslog {{ file("{syslog}" template("$FACILITY.$LEVEL $PROGRAM $MSG\\n")); }};
log {{ source(s_devlog); destination(d_syslog); }};
"""
    env = child_env(ANTHROPIC_COMPLIANCE_API_KEY=None, ANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET=str(socket))
    sng = SyslogNg(tmp_path, source, env)
    sng.start()
    time.sleep(30)
    assert sng.lines() == []
    assert len(starts.read_text().splitlines()) <= 7
    logged = syslog.read_text()
    no_key = [line for line in logged.splitlines() if "no API key" in line]
    assert len(no_key) == 1 and no_key[0].startswith("daemon.err anthropic-compliance-input "), logged
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    errors = {s.labels["reason"]: s.value for s in families["anthropic_compliance_input_error"].samples}
    assert errors["config"] == 1 and sum(errors.values()) == 1
    assert families["anthropic_compliance_input_up"].samples[0].value == 0

    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    plugin.configure(key={"file": str(key_file)}, **settings)
    got = [r["id"] for r in sng.wait_for(50, timeout=2 * 5)]
    sng.stop()
    assert sorted(got) == sorted(expected)
    assert len(starts.read_text().splitlines()) <= 7
    assert "recovered: config" in syslog.read_text()
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["anthropic_compliance_input_up"].samples[0].value == 1
    assert families["anthropic_compliance_input_activities_emitted"].samples[0].value == 50
