"""`run --follow` as a shipper runs it for months: through a bad key, a second instance, an API
outage and a full disk it never exits; each episode is logged once and shown in the metrics
while it lasts, then clears; and every activity arrives exactly once."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from pathlib import Path

from helpers import KEY, Plugin, child_env, fill_up, needs_root, read_metrics, wait_until

DAY = 86400.0
P = "anthropic_compliance_input_"


class Follower:
    """The plugin under --follow, its stdout drained as a shipper would."""

    def __init__(self, plugin: Plugin, env: dict[str, str], *args: str) -> None:
        self.proc = plugin.start("--log-format", "json", "run", "--follow", *args, env=env)
        self.out: list[bytes] = []
        self.reader = threading.Thread(target=lambda: self.out.extend(iter(self.proc.stdout.readline, b"")))
        self.reader.start()

    def ids(self) -> list[str]:
        return [json.loads(line)["id"] for line in list(self.out)]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        self.reader.join(timeout=10)
        return err.decode()


def error_is(metrics: Path, reason: str | None) -> bool:
    if not metrics.exists():
        return False
    m = read_metrics(metrics)
    held = [r for r, v in m[P + "error"].items() if v == 1]
    return held == ([reason] if reason else []) and m[P + "up"] == (0 if reason else 1)


@needs_root
def test_follow_outlasts_every_condition_that_can_heal(plugin: Plugin, model, sim, now, tmp_path, tiny_fs):
    model.rate_limit = 100000
    key_file = tmp_path / "api-key"
    key_file.write_text("sk-ant-api01-" + "w" * 60 + "\n")  # well formed, but revoked
    key_file.chmod(0o600)
    metrics = tmp_path / "health.prom"
    plugin.state_path = tiny_fs / "default.db"
    plugin.configure(state={"path": str(plugin.state_path)}, key={"file": str(key_file)},
                     metrics={"textfile": str(metrics)}, api={"max_retries": 1},
                     collect={"interval_seconds": 1, "settle_delay_seconds": 1, "overlap_seconds": 600})
    expected = [r["id"] for r in model.generate(30, now - DAY, now - 60)]

    def more(count: int) -> None:
        expected.extend(r["id"] for r in model.generate(count, time.time() - 1, time.time()))

    # 1. another instance holds the lock
    plugin.state_path.parent.mkdir(exist_ok=True)
    holder = os.open(f"{plugin.state_path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    follower = Follower(plugin, child_env(ANTHROPIC_COMPLIANCE_API_KEY=None))
    wait_until(lambda: error_is(metrics, "lock"), 10, "the lock episode in the metrics")
    os.close(holder)  # ... released: the next try gets it, and meets the revoked key
    wait_until(lambda: error_is(metrics, "auth"), 15, "the 401 episode in the metrics")
    assert follower.proc.poll() is None and follower.out == []

    # 2. the key is fixed in place
    key_file.write_text(KEY + "\n")
    wait_until(lambda: len(follower.out) >= 30 and error_is(metrics, None), 15, "delivery after the key fix")

    # 3. the API is down for a minute, while activities keep happening
    sim.faults = lambda n: "503"
    more(10)
    wait_until(lambda: error_is(metrics, "network"), 15, "the outage in the metrics")
    time.sleep(60)
    more(10)
    sim.faults = None
    wait_until(lambda: len(follower.out) >= 50 and error_is(metrics, None), 15, "delivery after the outage")

    # 4. the state's disk fills up
    filler = fill_up(tiny_fs)
    more(10)
    wait_until(lambda: error_is(metrics, "disk"), 15, "the full disk in the metrics")
    filler.unlink()
    wait_until(lambda: len(set(follower.ids())) >= 60 and error_is(metrics, None), 15, "delivery after space is freed")

    assert follower.proc.poll() is None  # it never exited
    err = follower.stop()
    assert follower.proc.returncode == 0 and "Traceback" not in err
    got = follower.ids()
    assert sorted(got) == sorted(expected)  # each exactly once
    logs = [json.loads(line) for line in err.splitlines()]
    for reason in ("lock", "auth", "network", "disk"):
        assert [e["level"] for e in logs if e.get("error") == reason] == ["error"], (reason, err)
        assert len([e for e in logs if e.get("recovered") == reason]) == 1, (reason, err)
    assert all(e["level"] != "error" or "error" in e for e in logs), err  # no other error lines
    m = read_metrics(metrics)
    assert m[P + "activities_emitted_total"] == len(got)


def test_follow_since_counts_from_the_start_and_is_spent_after_the_first_poll(plugin: Plugin, model, sim, tmp_path):
    """`run --follow --since 1h` with no key yet: the window still starts an hour before the
    process did; and once the state exists, a later failure does not turn --since into a
    usage error (exit 64 would make syslog-ng restart it in a tight loop)."""
    key_file = tmp_path / "api-key"
    plugin.configure(key={"file": str(key_file)}, api={"max_retries": 0},
                     collect={"interval_seconds": 1, "settle_delay_seconds": 1})
    started = time.time()
    follower = Follower(plugin, child_env(ANTHROPIC_COMPLIANCE_API_KEY=None), "--since", "1h")
    time.sleep(4)
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    wait_until(lambda: plugin.state_path.exists(), 15, "the first poll")
    assert plugin.state()["origin"] <= _iso(started - 3600 + 2)  # the process's start, not the key's arrival
    sim.faults = lambda n: "503"
    time.sleep(7)
    sim.faults = None
    time.sleep(6)
    assert follower.proc.poll() is None
    err = follower.stop()
    assert follower.proc.returncode == 0 and "--since applies to a first run only" not in err


def test_a_state_deleted_while_follow_waits_to_retry_is_not_a_first_run(plugin: Plugin, model, sim, now):
    model.generate(20, now - DAY, now - 3600)
    plugin.configure(api={"max_retries": 0}, collect={"interval_seconds": 1, "settle_delay_seconds": 1})
    follower = Follower(plugin, child_env())
    wait_until(lambda: len(follower.out) == 20, 15, "the first delivery")
    sim.faults = lambda n: "503"
    time.sleep(3)  # failing now, waiting to retry
    for suffix in ("", "-wal", "-shm"):
        Path(f"{plugin.state_path}{suffix}").unlink(missing_ok=True)
    sim.faults = None
    time.sleep(8)
    assert len(follower.out) == 20  # nothing delivered again from initial_lookback
    err = follower.stop()
    assert follower.proc.returncode == 65 and "deleted while the collector ran" in err


def test_a_new_problem_with_the_same_reason_is_logged(plugin: Plugin, tmp_path):
    """A missing key file, then a broken config: both `config`, each logged once."""
    key_file = tmp_path / "missing-key"
    plugin.configure(key={"file": str(key_file)}, collect={"interval_seconds": 1})
    follower = Follower(plugin, child_env(ANTHROPIC_COMPLIANCE_API_KEY=None))
    time.sleep(3)
    plugin.config_path.write_text(plugin.config_path.read_text() + '\n[output]\nforward_port = "x"\n')
    time.sleep(7)
    err = follower.stop()
    errors = [json.loads(line) for line in err.splitlines() if '"level":"error"' in line]
    assert [e["error"] for e in errors] == ["config", "config"], err
    assert "does not exist" in errors[0]["message"] and "forward_port" in errors[1]["message"]


def _iso(moment: float) -> str:
    from anthropic_compliance_input.timeutil import format_rfc3339

    return format_rfc3339(moment)
