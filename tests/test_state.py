"""The state file: versioned, private and bounded; what a corrupt or unknown one, a second
instance, `--since` on an existing one and `state reset` do; a full disk and a read-only state
directory."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import KEY, Plugin, assert_one_line_error, child_env, fill_up, needs_root

DAY = 86400.0


def test_state_file_is_versioned_private_and_bounded(plugin: Plugin, model, now):
    model.generate(5000, now - 3 * DAY, now - 120)
    assert plugin.run().rc == 0
    doc = plugin.state()
    assert doc["version"] == 2 and doc["high_water"] > doc["origin"]
    assert stat.S_IMODE(os.stat(plugin.state_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(plugin.state_path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(plugin.state_path.with_name("default.db.lock")).st_mode) == 0o600
    assert doc["seen"] < 100  # only ids inside the 5-minute overlap, not all 5000
    assert KEY.encode() not in plugin.state_path.read_bytes()


def test_corrupt_state_stops_with_65_and_is_left_untouched(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    plugin.state_path.write_text('{"version": 1, "cursor": {"high_wat')
    before = plugin.state_path.read_bytes()
    assert_one_line_error(plugin.run(), 65, str(plugin.state_path), "state reset --since")
    assert plugin.state_path.read_bytes() == before


def test_unknown_state_version_stops_with_65(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    plugin.state_path.write_text(json.dumps({"version": 99, "cursor": {}, "seen": {}, "late_seen": {}}))
    assert_one_line_error(plugin.run(), 65, "unknown state version 99")


def test_a_second_instance_on_the_same_state_exits_75(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    lock = plugin.state_path.with_name("default.db.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = plugin.run()
    assert_one_line_error(result, 75, "another instance holds the state lock")
    assert not plugin.state_path.exists()


def test_since_on_an_existing_state_is_a_usage_error(plugin: Plugin):
    assert plugin.run().rc == 0
    assert_one_line_error(plugin.run("run", "--since", "7d"), 64, "first run only", "state reset --since 7d")


def test_state_reset_requires_since_or_yes_and_then_redelivers(plugin: Plugin, model, now):
    records = model.generate(40, now - 3 * 3600, now - 120)
    assert len(plugin.run().ids) == 40
    assert plugin.run().ids == []
    reset = plugin.run("state", "reset", "--since", "4h")
    assert reset.rc == 0 and b"next run delivers everything from" in reset.stdout
    assert sorted(plugin.run().ids) == sorted(r["id"] for r in records)
    reset = plugin.run("state", "reset", "--yes")
    assert reset.rc == 0 and not plugin.state_path.exists()
    assert reset.stdout.decode().strip() == "state deleted: the next run starts 4 days back"  # initial_lookback 4d


@needs_root
def test_a_full_disk_keeps_the_previous_state_and_loses_nothing(plugin: Plugin, model, now, tiny_fs):
    plugin.state_path = tiny_fs / "default.db"
    # activities that appear later are inside the re-read window behind the cursor
    plugin.configure(state={"path": str(plugin.state_path)}, collect={"overlap_seconds": 7200})
    first = model.generate(20, now - DAY, now - 3 * 3600)
    assert len(plugin.run().ids) == 20
    before = plugin.state()
    filler = fill_up(tiny_fs)
    second = model.generate(40, now - 3000, now - 120)
    full = plugin.run()
    assert full.rc == 75 and "full" in full.stderr and "Traceback" not in full.stderr
    after = plugin.state()
    assert (after["high_water"], after["seen"]) == (before["high_water"], before["seen"])
    filler.unlink()
    again = plugin.run()
    assert again.rc == 0
    delivered = set(full.ids) | set(again.ids)
    assert delivered == {r["id"] for r in second} and not delivered & {r["id"] for r in first}


@needs_root
def test_a_read_only_state_directory_is_a_clear_error(plugin: Plugin, model, now, tiny_fs):
    plugin.state_path = tiny_fs / "default.db"
    plugin.configure(state={"path": str(plugin.state_path)})
    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    before = plugin.state_path.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    result = plugin.run()
    assert_one_line_error(result, 78, "Read-only file system", "[state] path")
    assert plugin.state_path.read_bytes() == before


def test_a_dead_letter_on_a_full_disk_is_75():
    from anthropic_compliance_input.errors import PluginError
    from anthropic_compliance_input.sinks import RejectFile

    rejects = RejectFile("/dev/full")  # every write fails with ENOSPC, as on a full filesystem
    with pytest.raises(PluginError) as caught:
        rejects.write([({"id": "activity_x"}, "actor: Field required")])
    assert caught.value.code == 75 and "dead-letter file" in str(caught.value)
    assert "No space left on device" in str(caught.value)


@needs_root
def test_a_full_disk_with_a_dead_letter_to_write_is_75_and_commits_nothing(plugin: Plugin, model, now, tiny_fs):
    plugin.state_path = tiny_fs / "default.db"
    plugin.configure(state={"path": str(plugin.state_path)}, collect={"overlap_seconds": 7200})
    model.generate(5, now - DAY, now - 3 * 3600)
    assert plugin.run().rc == 0
    before = plugin.state()
    fresh = model.generate(10, now - 3000, now - 2000)
    broken = model.factory.make(now - 1500, "claude_chat_created")
    broken["actor"] = {"kind": "no type"}  # fails the schema: goes to the dead-letter file
    model.add(broken)
    filler = fill_up(tiny_fs)
    full = plugin.run()  # the state is written before anything else, so that is where it stops
    assert_one_line_error(full, 75, "free disk space")
    after = plugin.state()
    assert (after["high_water"], after["seen"]) == (before["high_water"], before["seen"])
    filler.unlink()
    again = plugin.run()
    assert again.rc == 0 and sorted(again.ids) == sorted(r["id"] for r in fresh)
    dead = plugin.rejected_path.read_text().splitlines()
    assert len(dead) == 1 and broken["id"] in dead[0]


def test_a_state_locked_by_another_process_fails_before_printing_anything(plugin: Plugin, model, now):
    """Found by an adversarial run: each poll printed a page, then could not commit it, so every
    run repeated that page. The state is written first now; a held SQLite lock is 75."""
    import sqlite3

    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    model.generate(10, now - 250, now - 120)
    holder = sqlite3.connect(plugin.state_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a backup tool or a sqlite3 shell writing
    try:
        locked = plugin.run()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(locked, 75, "locked by another process")
    assert len(plugin.run().ids) == 10


def test_two_paths_to_one_state_share_one_lock(plugin: Plugin, model, now, tmp_path):
    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    link = tmp_path / "link.db"
    link.symlink_to(plugin.state_path)
    holder = plugin.start("run", "--follow", stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        (tmp_path / "other").mkdir()
        other = Plugin(tmp_path / "other", plugin.url)
        other.configure(state={"path": str(link)})
        assert_one_line_error(other.run(), 75, "another instance holds the state lock")
    finally:
        holder.terminate()
        holder.communicate(timeout=20)


def test_a_state_deleted_under_a_running_collector_stops_it(plugin: Plugin, model, now):
    model.generate(5, now - DAY, now - 3600)
    plugin.configure(collect={"interval_seconds": 0.3})
    proc = plugin.start("run", "--follow", stdout=subprocess.DEVNULL)
    time.sleep(1.5)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{plugin.state_path}{suffix}").unlink(missing_ok=True)
    time.sleep(3)
    assert proc.poll() is None  # it waits a minute: a shipper that restarts it at once must not spin
    proc.send_signal(signal.SIGTERM)  # ... but a stop cuts the wait short, keeping the exit code
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 65 and "deleted while the collector ran" in err.decode()
    assert "exiting in 60 s" in err.decode()


def test_a_state_missing_a_table_is_refused_not_rebuilt(plugin: Plugin, model, now):
    import sqlite3

    model.generate(5, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    with sqlite3.connect(plugin.state_path) as db:
        db.execute("DROP TABLE seen")
    assert_one_line_error(plugin.run(), 65, "unreadable", "meta")


def edit_state(path: Path, **fields) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        doc = json.loads(db.execute("SELECT value FROM meta WHERE name = 'state'").fetchone()[0])
        doc.update(fields)
        db.execute("UPDATE meta SET value = ? WHERE name = 'state'", (json.dumps(doc),))


@pytest.mark.parametrize("field", ["seen_floor", "origin", "newest_activity", "last_success"])
def test_a_hand_edited_state_dated_ahead_is_refused_not_trusted(plugin: Plugin, model, now, field):
    """Found by an audit: each field was bounded alone (1970..2200), so a seen floor past the
    cursor or an origin in 2100 stopped collection for good while `status` said healthy."""
    model.generate(20, now - DAY, now - 3600)
    assert plugin.run().rc == 0
    edit_state(plugin.state_path, **{field: 4102444800.0})  # 2100-01-01
    pending = model.generate(5, now - 1800, now - 600)
    result = plugin.run()
    assert_one_line_error(result, 65, "state reset --since")
    assert result.ids == []
    if field in ("newest_activity", "last_success"):
        status = json.loads(plugin.run("status", "--json", "--max-age", "1d").stdout)
        assert status["healthy"] is False and "dates_ahead_of_api_clock" in status["stale"]
    assert plugin.run("state", "reset", "--since", "2h").rc == 0  # the documented way out
    assert {r["id"] for r in pending} <= set(plugin.run().ids)


IO_REPORT = """
import atexit, os, runpy
atexit.register(lambda: open(os.environ["IO_REPORT"], "w").write(open("/proc/self/io").read()))
runpy.run_module("anthropic_compliance_input", run_name="__main__", alter_sys=True)
"""


def state_bytes_written(plugin: Plugin, count: int, tmp: Path) -> int:
    """Bytes the plugin wrote anywhere but stdout and stderr (the state, its WAL, the lock) while
    it delivered `count` activities that share one created_at, at 500 a page."""
    from anthropic_compliance_input.simulator import FeedModel, SimServer

    model = FeedModel(accept_any_key=True, side_effects=False)
    created = time.time() - 3600.5  # one created_at for all (a fraction, so the factory keeps it)
    model.extend([model.factory.make(created) for _ in range(count)])
    with SimServer(model) as server:
        plugin.url, plugin.state_path = server.url, tmp / f"cluster{count}.db"
        plugin.configure(api={"page_size": 500})
        report = tmp / f"io{count}"
        result = subprocess.run([sys.executable, "-c", IO_REPORT, "--config", str(plugin.config_path), "run"],
                                env=child_env(IO_REPORT=str(report)), capture_output=True, timeout=300)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == count, result.stderr
    io = dict(line.split(": ") for line in report.read_text().splitlines())
    return int(io["wchar"]) - len(result.stdout) - len(result.stderr)


def test_a_commit_writes_in_proportion_to_its_page_not_to_the_cluster(plugin: Plugin, tmp_path):
    """Found on 0.1: the whole seen set was rewritten on every page, so a cluster of activities on
    one timestamp (all inside the overlap, all kept) cost O(cluster) per page and O(cluster²) in
    all. Four times the cluster must cost about four times the writes, not sixteen. (Time and
    memory for a 300,000-activity cluster: `make bench`.)"""
    small = state_bytes_written(plugin, 5_000, tmp_path) / 5_000
    large = state_bytes_written(plugin, 20_000, tmp_path) / 20_000
    assert large < 2 * small, (small, large)  # 0.1: 297 -> 1108 bytes an activity (3.7x)
