"""`make bench-tenants`: what one tenant costs, so an operator can plan for 1, 10, 100 or 1,000.

N tenant instances (N = 1, 10, 50) against one simulated API, each with its own organization,
key and state: the resident `run --follow` instance's RSS once its backfill is done, its CPU
per quiet poll, the CPU of one scheduled `run` that finds nothing new (process start included),
and the state file after a day of a busy organization. Figures, not pass/fail.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ENV, PLUGIN  # noqa: E402

from anthropic_compliance_input.simulator import FeedModel, SimServer  # noqa: E402

POLL = 2.0  # seconds between quiet polls of the resident instances
QUIET = 20.0  # seconds of quiet polling measured
TICK = os.sysconf("SC_CLK_TCK")


def key(n: int) -> str:
    return f"sk-ant-api01-TENANTBENCH{n:04d}-abcdefghijklmnopqrstuvwxyz-0123456789"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def config(tmp: Path, url: str, n: int) -> Path:
    path = tmp / f"tenant{n}.toml"
    path.write_text(f'[api]\nbase_url = "{url}"\n[state]\npath = "{tmp}/tenant{n}.db"\n'
                    f'[collect]\ninitial_lookback = "1d"\ninterval_seconds = {POLL}\n')
    return path


def tenants(model: FeedModel, count: int, per_tenant: int, start: float, end: float) -> None:
    """`count` organizations, each with its own key and `per_tenant` activities."""
    for n in range(count):
        org, org_uuid = f"org_bench{n:04d}", f"00000000-0000-4000-8000-{n:012d}"
        model.keys[key(n)] = {"read:compliance_activities"}
        model.key_orgs[key(n)] = org
        records = model.generate(per_tenant, start, end, kind="claude_chat_created")
        for r in records:
            r["organization_id"], r["organization_uuid"] = org, org_uuid


def resident(tmp: Path, url: str, count: int) -> tuple[float, float]:
    """Mean RSS (MB) after the backfill and mean CPU per quiet poll (ms) of `count` instances."""
    procs = [subprocess.Popen(PLUGIN + ["--config", str(config(tmp, url, n)), "run", "--follow"],
                              env={**ENV, "ANTHROPIC_COMPLIANCE_API_KEY": key(n)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(count)]
    try:
        time.sleep(8 + count * 0.3)  # start-up and backfill
        before = [cpu_seconds(p.pid) for p in procs]
        time.sleep(QUIET)
        after = [cpu_seconds(p.pid) for p in procs]
        rss = statistics.mean(rss_mb(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    polls = QUIET / POLL
    return rss, statistics.mean(a - b for a, b in zip(after, before)) / polls * 1000


def scheduled(tmp: Path, url: str, count: int) -> float:
    """Median CPU (ms) of a scheduled `run` that finds nothing new, `count` of them at once."""
    for n in range(count):  # the first run of each tenant collects its backlog
        subprocess.run(PLUGIN + ["--config", str(config(tmp, url, n)), "run"], env={**ENV, "ANTHROPIC_COMPLIANCE_API_KEY": key(n)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    procs = [subprocess.Popen(PLUGIN + ["--config", str(config(tmp, url, n)), "run"],
                              env={**ENV, "ANTHROPIC_COMPLIANCE_API_KEY": key(n)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(count)]
    cpu = []
    for p in procs:
        _, _, usage = os.wait4(p.pid, 0)
        cpu.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(cpu) * 1000


def day_state(tmp: Path) -> tuple[int, float]:
    """Activities and state size (MB) after one run over a day of a busy organization."""
    model = FeedModel(accept_any_key=True, side_effects=False)
    now = time.time()
    count = 50_000
    model.generate(count, now - 86400, now - 120)
    with SimServer(model) as server:
        cfg = tmp / "day.toml"
        cfg.write_text(f'[api]\nbase_url = "{server.url}"\npage_size = 5000\n[state]\npath = "{tmp}/day.db"\n'
                       '[collect]\ninitial_lookback = "2d"\n')
        subprocess.run(PLUGIN + ["--config", str(cfg), "run"], env={**ENV, "ANTHROPIC_COMPLIANCE_API_KEY": key(0)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return count, sum(p.stat().st_size for p in tmp.glob("day.db*")) / 1e6


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}", flush=True)
    rows = []
    for count in (1, 10, 50):
        tmp = Path(tempfile.mkdtemp(prefix=f"aci-tenants-{count}-"))
        model = FeedModel(side_effects=False)
        now = time.time()
        tenants(model, count, 500, now - 3600, now - 120)
        with SimServer(model) as server:
            rss, poll_ms = resident(tmp, server.url, count)
            for db in tmp.glob("tenant*.db*"):
                db.unlink()
            run_ms = scheduled(tmp, server.url, count)
        rows.append((count, rss, poll_ms, run_ms))
        print(f"  N={count}: {rss:.1f} MB resident, {poll_ms:.1f} ms CPU per quiet poll, "
              f"{run_ms:.0f} ms CPU per scheduled run", flush=True)
    activities, state_mb = day_state(Path(tempfile.mkdtemp(prefix="aci-tenants-day-")))
    print("\n| tenants at once | RSS per resident instance | CPU per quiet poll | CPU per scheduled run (nothing new) |")
    print("|---|---|---|---|")
    for count, rss, poll_ms, run_ms in rows:
        print(f"| {count} | {rss:.1f} MB | {poll_ms:.1f} ms | {run_ms:.0f} ms |")
    print(f"\nstate after a day of {activities:,} activities (one run): {state_mb:.1f} MB")


if __name__ == "__main__":
    main()
