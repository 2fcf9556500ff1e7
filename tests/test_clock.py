"""Time from the API, not the host: a host clock an hour ahead or behind the API's, or one that
steps during --follow, loses nothing and repeats nothing; the skew is reported.

The simulator runs on its own clock (`clock_offset`), so the host's is never faked: an API
clock an hour behind the host is the same as a host clock an hour ahead.
"""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("steps", [(HOUR, 0.0), (-HOUR, 0.0), (HOUR, -HOUR, 0.0)],
                         ids=["ahead-then-back", "behind-then-back", "ahead-behind-back"])
def test_host_clock_steps_during_follow_lose_nothing(plugin: Plugin, model, tmp_path, steps):
    """The host's time.time() steps (a bad NTP step, a VM resumed); the API's clock runs on."""
    offset = tmp_path / "host-clock-offset"
    offset.write_text("0")
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 20, "interval_seconds": 0.3})
    api_now = model.clock()
    expected = model.generate(50, api_now - HOUR, api_now - 5)
    env = child_env(PYTHONPATH=str(FAKE_CLOCK), HOST_CLOCK_OFFSET_FILE=str(offset))
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
