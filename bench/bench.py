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
import threading
import time
from pathlib import Path

import re
from contextlib import contextmanager
from typing import Iterator

KEY = "sk-ant-api01-benchmark-key-000000000000000"
PAGE = 5000
# Bytecode as installed: the package ships compiled modules, like the site-packages the import
# baseline uses, so PYTHONDONTWRITEBYTECODE (set on some dev machines) is dropped here.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
ENV["ANTHROPIC_COMPLIANCE_API_KEY"] = KEY
PLUGIN = [sys.executable, "-m", "anthropic_compliance_input"]


def _peak_rss(pid: int, box: list[int]) -> None:
    """Poll VmHWM: the address space's own high-water mark, reset at exec. (ru_maxrss of a
    vfork'd child carries the parent's pages across exec, so it overstates a small child.)"""
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        box[0] = max(box[0], int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return
        time.sleep(0.005)


def run_child(cmd: list[str], reader: bool = False) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user+sys), peak RSS (KiB) and stderr of one child process.
    `reader`: stdout is a pipe drained by another process (`cat`), as under a shipper; the
    kernel's copy into the pipe then counts, as the socket's does for the forward output."""
    with tempfile.TemporaryFile() as err:
        drain, out = None, subprocess.DEVNULL
        if reader:
            read_end, out = os.pipe()
            drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
            os.close(read_end)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=ENV, stdout=out, stderr=err)
        if drain:
            os.close(out)
        peak = [0]
        watcher = threading.Thread(target=_peak_rss, args=(proc.pid, peak), daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if drain:
            drain.wait()
        watcher.join()
        err.seek(0)
        text = err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, peak[0], text


def config(tmp: Path, url: str, name: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f'[api]\nbase_url = "{url}"\npage_size = {PAGE}\n[state]\npath = "{tmp}/{name}.db"\n'
                    '[collect]\ninitial_lookback = "2d"\n')
    return path


CLUSTER_SIM = """
import sys, time
from anthropic_compliance_input.simulator import FeedModel, SimServer
count, clustered = int(sys.argv[1]), sys.argv[2] == "cluster"
model = FeedModel(accept_any_key=True, side_effects=False)
now = time.time()
if clustered:  # every activity on one created_at (a fraction, so the factory keeps it)
    model.extend([model.factory.make(now - 3600.5) for _ in range(count)])
else:
    model.generate(count, now - 7200, now - 120)
with SimServer(model) as server:
    print(f"simulated Compliance API at {server.url}", file=sys.stderr, flush=True)
    time.sleep(86400)
"""


@contextmanager
def simulator(count: int, shape: str | None = None) -> Iterator[str]:
    """The simulated API in its own process: its memory must not count against the plugin's
    (a vfork'd child's ru_maxrss includes its parent's pages)."""
    cmd = ([sys.executable, "-c", CLUSTER_SIM, str(count), shape] if shape else
           PLUGIN + ["simulate", "--port", "0", "--count", str(count), "--rate", "0"])
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            match = re.search(r"API at (http://\S+)", line)
            if match:
                yield match.group(1)
                return
        raise SystemExit("simulator did not start")
    finally:
        proc.terminate()
        proc.wait()


def emitted(err: str) -> int:
    return int(re.search(r"emitted=(\d+)", err).group(1))  # type: ignore[union-attr]


def fetch_pages(url: str) -> list[bytes]:
    """The same pages the plugin reads (oldest first, page size 5000), as raw bodies."""
    import requests

    bodies, after = [], None
    with requests.Session() as s:
        s.headers["x-api-key"] = KEY
        lt = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        while True:
            params = {"limit": PAGE, "order": "asc", "created_at.lt": lt, **({"after_id": after} if after else {})}
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


ACK_RECEIVER = """
import socket, sys, threading, msgpack
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
print(srv.getsockname()[1], flush=True)
def serve(conn):
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
    while data := conn.recv(1 << 20):
        unpacker.feed(data)
        for message in unpacker:
            conn.sendall(msgpack.packb({"ack": message[2]["chunk"]}))
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""


@contextmanager
def ack_receiver() -> Iterator[int]:
    """A forward input that acks every chunk, in its own process (its CPU is not the plugin's)."""
    proc = subprocess.Popen([sys.executable, "-c", ACK_RECEIVER], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def formats(tmp: Path, rounds: int = 5) -> list[tuple[str, str, str]]:
    """CPU per activity of `run --format raw|ecs|ocsf`, interleaved (target: ECS and OCSF at
    most 2x raw)."""
    cpu: dict[str, list[float]] = {"raw": [], "ecs": [], "ocsf": []}
    with simulator(100_000) as url:
        for i in range(rounds):
            for fmt in cpu:
                cfg = config(tmp, url, f"fmt-{fmt}{i}")
                result = run_child(PLUGIN + ["--config", str(cfg), "run", "--format", fmt], reader=True)
                cpu[fmt].append(result[1] / emitted(result[3]) * 1e6)
    raw = statistics.median(cpu["raw"])
    return [(f"--format {fmt}: CPU per activity (median of {rounds})", f"{statistics.median(v):.1f} µs",
             "" if fmt == "raw" else f"{statistics.median(v) / raw:.2f}x raw (target <= 2x)") for fmt, v in cpu.items()]


def n_per_cpu(result: tuple[float, float, int, str]) -> float:
    return emitted(result[3]) / result[1]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aci-bench-"))
    import anthropic_compliance_input

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(anthropic_compliance_input.__file__).parent)],
                   env=ENV, check=True)
    rows: list[tuple[str, str, str]] = []
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.platform()}", flush=True)

    # 1. throughput: a 200,000-activity backfill at page size 5000
    with simulator(200_000) as url:
        wall, cpu, rss, err = run_child(PLUGIN + ["--config", str(config(tmp, url, "tp")), "run"])
        pages = fetch_pages(url)
    n = emitted(err)
    files = []
    for i, body in enumerate(pages):
        files.append(tmp / f"page{i:04d}.json")
        files[-1].write_bytes(body)
    rate = n / wall
    rows.append((f"run: {n:,} backfill, page size {PAGE}, end to end", f"{rate:,.0f} activities/s", ">= 50,000/s"))
    rows.append(("run: CPU per activity", f"{cpu / n * 1e6:.1f} µs", ""))
    b_wall, b_cpu, _, _ = run_child([sys.executable, "-c", BASELINE, *map(str, files)])
    rows.append(("baseline: json.loads + json.dumps per record", f"{b_cpu / n * 1e6:.1f} µs CPU/activity",
                 f"run/baseline = {cpu / b_cpu:.2f}x (target <= 2x)"))
    jq = shutil.which("jq")
    if jq:
        j_wall, j_cpu, _, _ = run_child([jq, "-c", ".data[]", *map(str, files)])
        rows.append(("jq -c '.data[]' on the same pages", f"{j_cpu / n * 1e6:.1f} µs CPU/activity",
                     f"run/jq = {cpu / j_cpu:.2f}x (target < 1x)"))
    else:
        rows.append(("jq -c '.data[]'", "jq not installed", ""))

    # 2. peak RSS by backlog size
    for size in (10_000, 100_000, 1_000_000):
        with simulator(size) as url:
            wall, cpu, rss, err = run_child(PLUGIN + ["--config", str(config(tmp, url, f"rss{size}")), "run"])
        rows.append((f"peak RSS, backlog {size:,}", f"{rss / 1024:.1f} MB ({emitted(err) / wall:,.0f}/s)",
                     "flat; <= 80 MB at 1M"))

    # 3. a 300,000-activity cluster on one created_at, next to the same volume spread out
    cluster_rss: dict[str, int] = {}
    for shape in ("spread", "cluster"):
        with simulator(300_000, shape) as url:
            cfg = config(tmp, url, shape)
            wall, cpu, rss, err = run_child(PLUGIN + ["--config", str(cfg), "--log-level", "debug", "run"])
        cluster_rss[shape] = rss
        commits = [float(m) for m in re.findall(r"page committed: \d+ records, \d+ seen ids stored, ([\d.]+) ms", err)]
        tenth = max(1, len(commits) // 10)
        first, last = statistics.median(commits[:tenth]), statistics.median(commits[-tenth:])
        state_mb = sum(p.stat().st_size for p in tmp.glob(f"{shape}.db*")) / 1e6
        rows.append((f"300,000 activities, {shape}: peak RSS, wall", f"{rss / 1024:.1f} MB, {wall:.1f} s, "
                     f"state {state_mb:.0f} MB", "cluster RSS <= 1.3x spread"))
        rows.append((f"300,000 activities, {shape}: commit per page, first / last tenth",
                     f"{first:.1f} / {last:.1f} ms over {len(commits)} pages", "flat"))
    rows.append(("cluster / spread peak RSS", f"{cluster_rss['cluster'] / cluster_rss['spread']:.2f}x", "<= 1.3x"))

    # 4. a run that finds nothing new, next to importing requests + pydantic
    with simulator(1000) as url:
        cfg = config(tmp, url, "empty")
        run_child(PLUGIN + ["--config", str(cfg), "run"])
        empty, imports = [], []
        for _ in range(11):  # interleaved, so both see the same machine
            empty.append(run_child(PLUGIN + ["--config", str(cfg), "run"])[0])
            imports.append(run_child([sys.executable, "-c", "import requests, pydantic"])[0])
    e, i = statistics.median(empty), statistics.median(imports)
    rows.append(("run that finds nothing new (median of 11)", f"{e * 1000:.0f} ms wall", f"{e / i:.2f}x import baseline (target <= 2x)"))
    rows.append(("python3 -c 'import requests, pydantic'", f"{i * 1000:.0f} ms wall", ""))

    # 5. acknowledged forward output next to stdout, on the same 100,000 activities
    with simulator(100_000) as url, ack_receiver() as port:
        out_cpu, fwd_cpu = [], []
        for i in range(3):  # interleaved
            cfg = config(tmp, url, f"out{i}")
            out_cpu.append(n_per_cpu(run_child(PLUGIN + ["--config", str(cfg), "run"], reader=True)))
            cfg = config(tmp, url, f"fwd{i}")
            cfg.write_text(cfg.read_text() + f'[output]\nmode = "forward"\nforward_port = {port}\n')
            fwd_cpu.append(n_per_cpu(run_child(PLUGIN + ["--config", str(cfg), "run"])))
    o, f = statistics.median(out_cpu), statistics.median(fwd_cpu)
    rows.append(("stdout into a reading pipe: activities per CPU-second (median of 3)", f"{o:,.0f}", ""))
    rows.append(("forward with acks: activities per CPU-second", f"{f:,.0f}", f"{f / o:.2f}x stdout (target >= 1x)"))

    # 6. output formats: raw, ECS and OCSF on the same 100,000 activities, into a reading pipe
    rows += formats(tmp)

    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure':<{width}} | result | target / ratio |")
    print(f"|{'-' * (width + 2)}|--------|----------------|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value} | {target} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
