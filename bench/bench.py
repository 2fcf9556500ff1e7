"""`make bench`: throughput, CPU per activity, peak RSS and start-up of the plugin, measured
against the simulated API on loopback, next to bare baselines on the same pages.

Figures, not pass/fail: the targets are printed beside them. Run on an idle machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anthropic_compliance_input.simulator import FeedModel, SimServer

KEY = "sk-ant-api01-benchmark-key-000000000000000"
PAGE = 5000
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
ENV["ANTHROPIC_COMPLIANCE_API_KEY"] = KEY
PLUGIN = [sys.executable, "-m", "anthropic_compliance_input"]


def run_child(cmd: list[str], stdin=None, stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user+sys) and peak RSS (KiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def config(tmp: Path, url: str, name: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f'[api]\nbase_url = "{url}"\npage_size = {PAGE}\n[state]\npath = "{tmp}/{name}.json"\n'
                    '[collect]\ninitial_lookback = "3d"\n')
    return path


def model_with(count: int) -> FeedModel:
    model = FeedModel(keys={KEY: {"read:compliance_activities"}}, side_effects=False, rate_limit=10**9)
    now = time.time()
    model.generate(count, now - 2 * 86400, now - 300)
    return model


def fetch_pages(url: str) -> list[bytes]:
    """The same pages the plugin reads (oldest first, page size 5000), as raw bodies."""
    import requests

    bodies, after = [], None
    with requests.Session() as s:
        s.headers["x-api-key"] = KEY
        while True:
            params = {"limit": PAGE, "order": "asc", **({"after_id": after} if after else {})}
            body = s.get(f"{url}/v1/compliance/activities", params=params).content
            bodies.append(body)
            doc = json.loads(body)
            if not doc["has_more"]:
                return bodies
            after = doc["last_id"]


BASELINE = """
import json, sys
out = open("/dev/null", "w")
for path in sys.argv[1:]:
    for record in json.loads(open(path, "rb").read())["data"]:
        out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\\n")
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aci-bench-"))
    rows: list[tuple[str, str, str]] = []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.platform()}", flush=True)

    # 1. throughput: a 200,000-activity backfill at page size 5000
    n = 200_000
    model = model_with(n)
    with SimServer(model) as server:
        wall, cpu, rss = run_child(PLUGIN + ["--config", str(config(tmp, server.url, "tp")), "run"])
        pages = fetch_pages(server.url)
    files = []
    for i, body in enumerate(pages):
        files.append(tmp / f"page{i:04d}.json")
        files[-1].write_bytes(body)
    rate = n / wall
    rows.append(("run: 200k backfill, end to end", f"{rate:,.0f} activities/s", ">= 50,000/s"))
    rows.append(("run: CPU per activity", f"{cpu / n * 1e6:.1f} µs", ""))
    b_wall, b_cpu, _ = run_child([sys.executable, "-c", BASELINE, *map(str, files)])
    rows.append(("baseline: json.loads + json.dumps per record", f"{b_cpu / n * 1e6:.1f} µs CPU/activity",
                 f"run/baseline = {cpu / b_cpu:.2f}x (target <= 2x)"))
    jq = shutil.which("jq")
    if jq:
        j_wall, j_cpu, _ = run_child([jq, "-c", ".data[]", *map(str, files)])
        rows.append(("jq -c '.data[]' on the same pages", f"{j_cpu / n * 1e6:.1f} µs CPU/activity",
                     f"run/jq = {cpu / j_cpu:.2f}x (target < 1x)"))
    else:
        rows.append(("jq -c '.data[]'", "jq not installed", ""))

    # 2. peak RSS by backlog size
    for size in (10_000, 100_000, 1_000_000):
        model = model_with(size)
        with SimServer(model) as server:
            wall, cpu, rss = run_child(PLUGIN + ["--config", str(config(tmp, server.url, f"rss{size}")), "run"])
        del model
        rows.append((f"peak RSS, backlog {size:,}", f"{rss / 1024:.1f} MB ({size / wall:,.0f}/s)",
                     "flat; <= 80 MB at 1M"))

    # 3. a run that finds nothing new, next to importing requests + pydantic
    model = model_with(1000)
    with SimServer(model) as server:
        cfg = config(tmp, server.url, "empty")
        run_child(PLUGIN + ["--config", str(cfg), "run"])
        empty = [run_child(PLUGIN + ["--config", str(cfg), "run"])[0] for _ in range(7)]
    imports = [run_child([sys.executable, "-c", "import requests, pydantic"])[0] for _ in range(7)]
    e, i = statistics.median(empty), statistics.median(imports)
    rows.append(("run that finds nothing new (median of 7)", f"{e * 1000:.0f} ms wall", f"{e / i:.2f}x import baseline (target <= 2x)"))
    rows.append(("python3 -c 'import requests, pydantic'", f"{i * 1000:.0f} ms wall", ""))

    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure':<{width}} | result | target / ratio |")
    print(f"|{'-' * (width + 2)}|--------|----------------|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value} | {target} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
