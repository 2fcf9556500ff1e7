"""SIGHUP in --follow builds a new client and collector: the run must not forget what the old
ones did (its summary line) nor how it shows progress."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
import time

from helpers import Plugin, child_env, drain_pty

DAY = 86400.0


def test_the_run_summary_counts_every_request_and_retry_across_reloads(plugin: Plugin, model, sim, now):
    model.generate(500, now - DAY, now - 120)
    faults = iter([None, "503", None, None, "503", None, "503"] * 100)
    sim.faults = lambda n: next(faults, None)
    plugin.configure(api={"page_size": 100}, collect={"interval_seconds": 0.3})
    proc = plugin.start("run", "--follow")
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()  # a full pipe would stall the collector
    for _ in range(3):
        time.sleep(1.2)
        proc.send_signal(signal.SIGHUP)
    time.sleep(1.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    reader.join(5)
    text = err.decode()
    assert proc.returncode == 0 and text.count("SIGHUP: config reloaded") == 3, text
    summary = re.search(r"run finished: emitted=(\d+) .* requests=(\d+) retries=(\d+)", text)
    assert summary, text
    emitted, requests, retries = map(int, summary.groups())
    assert emitted == len(lines) == 500
    assert requests == sim.request_count  # every request the API saw, across four clients
    assert retries == text.count("request failed (HTTP 503)") > 0


def test_a_reloaded_run_keeps_its_progress_display(plugin: Plugin, model, now):
    model.generate(100, now - DAY, now - 120)
    plugin.configure(api={"page_size": 50}, collect={"interval_seconds": 0.3, "settle_delay_seconds": 1})
    leader, follower = pty.openpty()
    proc = subprocess.Popen(plugin.cmd("run", "--follow"), env=child_env(), stdout=subprocess.PIPE,
                            stderr=follower)
    os.close(follower)
    reader, chunks = drain_pty(leader)
    lines = threading.Thread(target=proc.stdout.read, daemon=True)  # keep stdout drained
    lines.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    model.generate(120, model.clock() - 30, model.clock() - 2)  # a new backlog after the reload
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    reader.join(5)
    tty = b"".join(chunks).decode()
    after = tty.split("SIGHUP: config reloaded", 1)
    assert proc.returncode == 0 and len(after) == 2, tty
    assert re.search(r"\r\d+ activities, \d+ pages", after[1]), after[1]
