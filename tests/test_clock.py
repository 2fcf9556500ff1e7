"""Time from the API, not the host: a host clock an hour ahead or behind the API's, or one that
steps during --follow, loses nothing and repeats nothing; the skew is reported.

The simulator runs on its own clock (`clock_offset`), so the host's is never faked: an API
clock an hour behind the host is the same as a host clock an hour ahead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import Plugin, child_env

HOUR = 3600.0


def fresh(model, count: int, spread: float = 30.0) -> list[dict]:
    """Activities that happen now on the API's clock (visible at once)."""
    api_now = model.clock()
    return model.generate(count, api_now - spread, api_now - 0.5)


def assert_once(delivered: list[str], expected: list[dict], log: str = "") -> None:
    counts = Counter(delivered)
    assert not [k for k, n in counts.items() if n > 1], f"repeated: {log}"
    assert set(counts) == {r["id"] for r in expected}, f"missing: {log}"


@pytest.mark.parametrize("offset", [-HOUR, HOUR], ids=["host-ahead-1h", "host-behind-1h"])
def test_a_host_clock_an_hour_off_loses_nothing_and_reports_the_skew(plugin: Plugin, model, offset):
    model.clock_offset = offset
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 30})
    api_now = model.clock()
    backlog = model.generate(200, api_now - 6 * HOUR, api_now - 5)
    first = plugin.run()
    assert first.rc == 0, first.stderr
    state = plugin.state()
    later = fresh(model, 30, spread=0.5)  # created after the first run, on the API's clock
    time.sleep(1.6)  # past the settle delay
    second = plugin.run()
    assert second.rc == 0, second.stderr
    assert_once(first.ids + second.ids, backlog + later)  # 0.1, host ahead: none of `later` arrived
    # the cursor never passed the API's now - settle
    from anthropic_compliance_input.timeutil import epoch

    assert epoch(state["high_water"]) <= model.clock() - 1 + 0.01
    # the skew: measured, logged once (not on every run while it lasts), shown
    assert abs(state["clock_skew"] + offset) < 3, state["clock_skew"]  # host minus API
    assert "the host clock is 36" in first.stderr and ("ahead of" if offset < 0 else "behind") in first.stderr
    assert "the host clock is" not in second.stderr

    status = json.loads(plugin.run("status", "--json").stdout)
    assert "clock_warning" in status and status["up"] == 1 and status["lag_seconds"] > -5
    check = plugin.run("check")
    assert re.search(rf"host clock 3(59\d|60\d)s {'ahead of' if offset < 0 else 'behind'} the API's",
                     check.stdout.decode()), check.stdout


FAKE_CLOCK = Path(__file__).parent / "fakeclock"


def fake_clock_path() -> str:
    """PYTHONPATH for a child whose time.time() is the host's plus HOST_CLOCK_OFFSET_FILE's
    seconds; the package under test stays first-found if PYTHONPATH named it."""
    return os.pathsep.join(p for p in (str(FAKE_CLOCK), os.environ.get("PYTHONPATH")) if p)


def run_at(plugin: Plugin, offset_file: Path, offset: float, *args: str):
    """One plugin command on a host whose clock is `offset` seconds off the real one."""
    offset_file.write_text(str(offset))
    return plugin.run(*(args or ("run",)), env=child_env(PYTHONPATH=fake_clock_path(),
                                                         HOST_CLOCK_OFFSET_FILE=str(offset_file)))


@pytest.mark.parametrize("steps", [(HOUR, 0.0), (-HOUR, 0.0), (HOUR, -HOUR, 0.0)],
                         ids=["ahead-then-back", "behind-then-back", "ahead-behind-back"])
def test_host_clock_steps_during_follow_lose_nothing(plugin: Plugin, model, tmp_path, steps):
    """The host's time.time() steps (a bad NTP step, a VM resumed); the API's clock runs on."""
    offset = tmp_path / "host-clock-offset"
    offset.write_text("0")
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 20, "interval_seconds": 0.3})
    api_now = model.clock()
    expected = model.generate(50, api_now - HOUR, api_now - 5)
    env = child_env(PYTHONPATH=fake_clock_path(), HOST_CLOCK_OFFSET_FILE=str(offset))
    proc = subprocess.Popen(plugin.cmd("run", "--follow"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        for step in (0.0, *steps):
            offset.write_text(str(step))
            for _ in range(4):
                expected += fresh(model, 5, spread=0.3)
                time.sleep(0.4)
        time.sleep(2.5)  # the last ones settle and are read
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        reader.join(5)
    assert proc.returncode == 0, err.decode()
    assert_once([json.loads(line)["id"] for line in lines], expected, err.decode())
    assert b"the host clock is 36" in err  # each step was noticed and logged
    assert b"is ahead of the API's clock" not in err  # and never taken for a cursor to repair


DAY = 86400.0


def test_a_host_clock_fixed_after_being_a_day_behind_is_not_taken_for_a_hand_edit(plugin: Plugin, model, tmp_path):
    """Found by an adversarial review: a run on a host 25 h behind stored that skew; after NTP
    fixed the host, the next poll still trusted it, wrote its `now` (25 h ahead) into the state,
    and the run after refused that state as a hand edit (65)."""
    offset = tmp_path / "offset"
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 30})
    expected = model.generate(50, model.clock() - 3 * HOUR, model.clock() - 5)
    runs = [run_at(plugin, offset, -25 * HOUR)]
    for _ in range(2):
        expected += fresh(model, 5, spread=0.5)
        time.sleep(1.2)
        runs.append(run_at(plugin, offset, 0))
    assert [r.rc for r in runs] == [0, 0, 0], runs[-1].stderr
    assert_once([i for r in runs for i in r.ids], expected)


def test_a_stale_skew_does_not_push_the_late_floors_past_a_late_activity(plugin: Plugin, model, tmp_path):
    """Found by an adversarial review (and in 0.2's first cut): with the host 3 h behind at one
    run and fixed before the next, the late floors were set 3 h into the future, and an
    Access Transparency activity created 10 minutes ago and indexed now was never read."""
    offset = tmp_path / "offset"
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 30, "late_lookback": "1h"})
    model.generate(20, model.clock() - 2 * HOUR, model.clock() - 5)
    assert run_at(plugin, offset, -3 * HOUR).rc == 0
    t = model.clock()
    late = model.add(model.factory.make(t - 600, "anthropic_access"), visible_at=t + 3)
    ids = run_at(plugin, offset, 0).ids
    time.sleep(3.5)
    ids += run_at(plugin, offset, 0).ids + run_at(plugin, offset, 0).ids
    assert ids.count(late["id"]) == 1


def test_follow_through_a_vm_resumed_two_days_behind_and_then_fixed(plugin: Plugin, model, tmp_path):
    offset = tmp_path / "offset"
    offset.write_text(str(-2 * DAY))
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 20, "interval_seconds": 0.3})
    expected = model.generate(20, model.clock() - HOUR, model.clock() - 5)
    env = child_env(PYTHONPATH=fake_clock_path(), HOST_CLOCK_OFFSET_FILE=str(offset))
    proc = subprocess.Popen(plugin.cmd("run", "--follow"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)
    offset.write_text("0")  # NTP steps the clock
    for _ in range(6):
        expected += fresh(model, 3, spread=0.3)
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0 and b"ERROR" not in err, err.decode()[-2000:]
    assert_once([json.loads(line)["id"] for line in out.splitlines()], expected, err.decode())


def test_since_tomorrow_on_a_host_ahead_of_the_api_waits_instead_of_failing(plugin: Plugin, model):
    """`--since` may name tomorrow on the host's clock; with the host 2 h ahead of the API's that
    is more than a day ahead of the API: the state `state reset` wrote must not be refused."""
    model.clock_offset = -2 * HOUR
    plugin.configure(collect={"settle_delay_seconds": 1})
    from anthropic_compliance_input.timeutil import format_rfc3339

    since = format_rfc3339(int(time.time() + 23 * HOUR))
    assert plugin.run("state", "reset", "--since", since).rc == 0
    result = plugin.run()
    assert result.rc == 0 and result.ids == [], result.stderr
    plugin.state_path.unlink()
    first = plugin.run("run", "--since", since)
    assert first.rc == 0 and first.ids == [], first.stderr
