"""stdout that cannot take the lines: closed at start, /dev/full, opened read-only. Each is exit 74
with one error line and the state unchanged, and the next good run delivers everything."""

from __future__ import annotations

import json
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
    # started without a stdout at all (`>&-`): refused before it does anything
    closed = subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', *plugin.cmd(*argv)], env=child_env(),
                            stderr=subprocess.PIPE, timeout=60)
    assert closed.returncode == 74 and "stdout is closed" in closed.stderr.decode(), closed.stderr


def test_state_reset_without_a_stdout_changes_nothing(plugin: Plugin, model, now):
    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    before = plugin.state()
    for argv in (["state", "reset", "--yes"], ["state", "reset", "--since", "2d"]):
        closed = subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', *plugin.cmd(*argv)], env=child_env(),
                                stderr=subprocess.PIPE, timeout=60)
        assert closed.returncode == 74 and "changed nothing" in closed.stderr.decode(), closed.stderr
    assert plugin.state() == before


def test_max_runtime_holds_when_the_reader_stops_reading(plugin: Plugin, model, now):
    """`run --max-runtime 3 | (sleep 30)`: the pipe fills, the write blocks; the run still ends
    within 5 s (exit 75, saying the reader stalled), and nothing it did not hand over is skipped:
    what sat in the pipe plus the next run is every activity."""
    import os
    import time

    from helpers import child_env as env

    model.generate(6000, now - DAY, now - 3600)  # ~3 MB: far more than a pipe holds
    read_end, write_end = os.pipe()  # the reader: holds the pipe open, never reads
    started = time.monotonic()
    proc = subprocess.Popen(plugin.cmd("run", "--max-runtime", "3"), env=env(), stdout=write_end,
                            stderr=subprocess.PIPE)
    os.close(write_end)
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert proc.returncode == 75, err
    assert "while the reader was not reading stdout" in err.decode() and "Traceback" not in err.decode()
    os.set_blocking(read_end, False)
    chunks = []
    while True:
        try:
            chunk = os.read(read_end, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    buffered = b"".join(chunks)
    whole = buffered[: buffered.rfind(b"\n") + 1]  # a line cut by the abandoned write is not delivered
    got = [json.loads(line)["id"] for line in whole.splitlines()]
    assert 0 < len(got) < 6000
    rest = plugin.run()
    assert rest.rc == 0, rest.stderr
    assert set(got) | set(rest.ids) == {r["id"] for r in model.all_records()}
