"""Where the plugin's own log goes when a shipper throws its stderr away: the local syslog
socket or a file; and that no log target can stop the collector or hide a message."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time

from helpers import Plugin, child_env, wait_until

DAY = 86400.0


def test_syslog_target_sends_daemon_priority_and_ident(plugin: Plugin, model, now, tmp_path):
    model.generate(3, now - DAY, now - 3600)
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        env = child_env(ANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET=path)
        result = plugin.run("--log-target", "syslog", "--log-format", "json", "run", env=env)
        assert result.rc == 0 and result.stderr == "" and len(result.lines) == 3
        messages = [server.recv(65536).decode() for _ in range(2)]
    pid_prefix = r"anthropic-compliance-input["
    # <30>: facility daemon (3) * 8 + info (6)
    assert all(m.startswith("<30>" + pid_prefix) for m in messages), messages
    summary = json.loads(messages[-1].split("]: ", 1)[1].rstrip("\x00"))
    assert summary["emitted"] == 3 and summary["level"] == "info"
    errors = plugin.run("--log-target", "syslog", "run", env=child_env(ANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET=path,
                                                                          ANTHROPIC_COMPLIANCE_API_KEY=None))
    assert errors.rc == 78  # (the socket is gone now: the error falls back to stderr, said once)
    assert "no syslog socket" in errors.stderr and "no API key found" in errors.stderr


def test_a_syslog_daemon_that_stops_reading_does_not_stop_the_collector(plugin: Plugin, model, now, tmp_path):
    """A datagram queue that fills up blocks send(): the plugin must still collect and stop."""
    model.generate(30, now - DAY, now - 3600)
    path = str(tmp_path / "stalled.sock")
    plugin.configure(collect={"interval_seconds": 0.2})
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stalled:
        stalled.bind(path)  # never read
        proc = plugin.start("--log-target", "syslog", "--log-level", "debug", "run", "--follow",
                            env=child_env(ANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET=path))
        time.sleep(8)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and len(out.splitlines()) == 30
    assert "cannot write the log" in err.decode()  # the messages it could not send, on stderr


def test_file_target_appends_0640_and_follows_logrotate(plugin: Plugin, model, now, tmp_path):
    model.generate(5, now - DAY, now - 3600)
    log_file = tmp_path / "logs" / "aci.log"
    log_file.parent.mkdir()
    plugin.configure(log={"target": f"file:{log_file}"}, collect={"interval_seconds": 0.3})
    assert plugin.run().rc == 0
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640 and "run finished: emitted=5" in log_file.read_text()
    proc = plugin.start("run", "--follow")
    wait_until(lambda: "poll finished" in log_file.read_text(), 10, "a poll in the log file")
    os.rename(log_file, f"{log_file}.1")  # logrotate, without copytruncate
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: log_file.exists() and "poll finished" in log_file.read_text(), 10, "the reopened file")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == b""  # everything went to the file
    assert "stopped=SIGTERM" in log_file.read_text() and "stopped=SIGTERM" not in open(f"{log_file}.1").read()


def test_bad_log_targets_fall_back_to_stderr_with_one_line(plugin: Plugin, tmp_path):
    os.mkfifo(tmp_path / "fifo")  # no reader: opening it must not hang
    for target in (f"file:{tmp_path}", f"file:{tmp_path}/missing/dir.log", f"file:{tmp_path}/fifo", "journald"):
        result = plugin.run("--log-target", target, "run", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=None), timeout=20)
        assert result.rc == 78 and "Traceback" not in result.stderr, (target, result.stderr)
        assert "logging to stderr" in result.stderr and "no API key found" in result.stderr, (target, result.stderr)
    plugin.configure(log={"target": "journald"})
    assert plugin.run("check").rc == 78  # a bad [log] target is a config error
