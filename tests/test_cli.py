"""The command line: usage errors exit 64, help with examples, JSON logs with one summary line,
progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from helpers import Plugin, child_env, drain_pty

DAY = 86400.0


def test_usage_errors_exit_64(plugin: Plugin):
    result = plugin.run("run", "--max-runtime", "-5")
    assert result.rc == 64 and "Traceback" not in result.stderr
    assert plugin.run("frobnicate").rc == 64
    assert plugin.run("run", "--since", "last tuesday").rc == 64
    assert plugin.run("state", "reset").rc == 64


def test_help_has_examples_for_every_command(plugin: Plugin):
    top = plugin.run("--help")
    assert top.rc == 0 and b"examples:" in top.stdout and b"exit codes:" in top.stdout
    for cmd in (["run"], ["status"], ["key", "set"], ["key", "status"], ["key", "delete"], ["state", "show"],
                ["state", "reset"], ["check"], ["demo"], ["simulate"]):
        result = plugin.run(*cmd, "--help")
        assert result.rc == 0 and b"example" in result.stdout, cmd


def test_json_logs_and_one_summary_line(plugin: Plugin, model, now):
    model.generate(20, now - 3600, now - 120)
    result = plugin.run("--log-format", "json", "run")
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    summary = [d for d in logs if d["message"].startswith("run finished")]
    assert len(summary) == 1 and "emitted=20" in summary[0]["message"]
    assert "last_request_id=req_" in summary[0]["message"] and summary[0]["level"] == "info"
    assert "\r" not in result.stderr and "\x1b" not in result.stderr


def test_progress_only_on_a_terminal(plugin: Plugin, model, now):
    model.generate(3000, now - 2 * DAY, now - 120)
    plugin.configure(api={"page_size": 500})
    leader, follower = pty.openpty()
    proc = subprocess.Popen(plugin.cmd("run"), env=child_env(), stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    reader, chunks = drain_pty(leader)
    out, _ = proc.communicate(timeout=60)
    reader.join(10)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0 and len(out.splitlines()) == 3000
    assert "\r3000 activities, 6 pages" in tty and " of 20" in tty
    assert plugin.run("state", "reset", "--yes").rc == 0
    piped = plugin.run()
    assert "\r" not in piped.stderr and "activities, " not in piped.stderr
