"""stdout that cannot take the lines: closed at start, /dev/full, opened read-only. Each is exit 74
with one error line and the state unchanged, and the next good run delivers everything."""

from __future__ import annotations

import subprocess

import pytest
from helpers import Plugin, child_env

DAY = 86400.0


def run_with_stdout(plugin: Plugin, stdout, shell_redirect: str = "") -> subprocess.CompletedProcess:
    cmd = plugin.cmd("run")
    if shell_redirect:  # the shell closes fd 1 before exec: the plugin starts without a stdout
        cmd = ["sh", "-c", f'exec "$0" "$@" {shell_redirect}', *cmd]
    return subprocess.run(cmd, env=child_env(), stdout=stdout, stderr=subprocess.PIPE, timeout=60)


@pytest.mark.parametrize("how", ["closed", "dev-full", "read-only"])
def test_stdout_that_cannot_be_written_is_exit_74_and_commits_nothing(plugin: Plugin, model, now, tmp_path, how):
    first = model.generate(10, now - DAY, now - 3600)
    assert len(plugin.run().ids) == 10
    before = plugin.state()
    second = model.generate(25, now - 250, now - 120)  # inside the overlap re-read behind the cursor

    if how == "closed":
        result = run_with_stdout(plugin, None, ">&-")
    elif how == "dev-full":
        with open("/dev/full", "wb") as full:
            result = run_with_stdout(plugin, full)
    else:
        target = tmp_path / "read-only-target"
        target.write_bytes(b"")
        with open(target, "rb") as read_only:
            result = run_with_stdout(plugin, read_only)
        assert target.read_bytes() == b""

    err = result.stderr.decode()
    assert result.returncode == 74, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "stdout" in errors[0], err
    after = plugin.state()
    assert (after["high_water"], after["seen"], after["totals"]["emitted"]) == \
        (before["high_water"], before["seen"], before["totals"]["emitted"])
    # the lock file (the first file opened) did not become fd 1 and swallow the lines
    assert b"activity_" not in plugin.state_path.with_name(plugin.state_path.name + ".lock").read_bytes()

    again = plugin.run()
    assert again.rc == 0 and sorted(again.ids) == sorted(r["id"] for r in second)
    assert not set(again.ids) & {r["id"] for r in first}


def test_closed_stdin_and_stderr_are_filled_not_fatal(plugin: Plugin, model, now):
    model.generate(5, now - DAY, now - 3600)
    cmd = ["sh", "-c", 'exec "$0" "$@" <&- 2>&-', *plugin.cmd("run")]
    result = subprocess.run(cmd, env=child_env(), stdout=subprocess.PIPE, timeout=60)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 5


@pytest.mark.parametrize("argv", [["status", "--json"], ["state", "show"], ["key", "status"], ["check"]])
def test_every_command_reports_a_stdout_it_cannot_write_as_74(plugin: Plugin, model, now, argv):
    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    with open("/dev/full", "wb") as full:
        result = subprocess.run(plugin.cmd(*argv), env=child_env(), stdout=full, stderr=subprocess.PIPE, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 74 and "Traceback" not in err and "cannot write to stdout" in err, err
    # a reader that went away: the pipe is closed before the command prints
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader.wait()
    result = subprocess.run(plugin.cmd(*argv), env=child_env(), stdout=reader.stdin, stderr=subprocess.PIPE,
                            timeout=60)
    reader.stdin.close()
    assert result.returncode == 74 and "Traceback" not in result.stderr.decode(), result.stderr
