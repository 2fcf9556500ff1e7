"""Faults from the network, the API and the operator, and signals, injected for real. (The disk's
faults, full or read-only, are with the state: test_state.py.)"""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import time

from helpers import KEY, Plugin, child_env

DAY = 86400.0
FAULTS = ["429", "500", "502", "503", "529", "reset", "truncate", "html", "html502", "badjson", "noenvelope"]


def random_faults(rate: float, seed: int = 3):
    """Fail a `rate` share of requests, cycling through every kind of fault in a shuffled order."""
    rng = random.Random(seed)
    kinds = itertools.cycle(rng.sample(FAULTS, len(FAULTS)))
    seen: list[str] = []

    def fault(_n: int) -> str | None:
        if rng.random() < rate:
            seen.append(next(kinds))
            return seen[-1]
        return None

    fault.seen = seen  # type: ignore[attr-defined]
    return fault


def test_backfill_of_20000_under_random_faults_delivers_each_activity_once(plugin: Plugin, model, sim, now):
    model.generate(20000, now - 3 * DAY, now - 120)
    faults = random_faults(0.4)
    sim.faults = faults
    plugin.configure(api={"page_size": 500, "max_retries": 10, "timeout_seconds": 5})
    result = plugin.run()
    assert result.rc == 0, result.stderr[-2000:]
    assert len(result.ids) == len(set(result.ids)) == 20000
    assert set(result.ids) == {r["id"] for r in model.all_records()}
    assert set(faults.seen) == set(FAULTS)  # every kind of fault was really exercised
    assert "request failed" in result.stderr  # and logged, one line per retry
    assert f"retries={len(faults.seen)}" in result.stderr


def test_sigterm_stops_within_a_second_with_a_consistent_state(plugin: Plugin, model, sim, now, tmp_path):
    model.generate(20000, now - 3 * DAY, now - 120)
    sim.faults = lambda n: time.sleep(0.05)
    plugin.configure(api={"page_size": 200})
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(plugin.cmd("run"), env=child_env(), stdout=fh, stderr=subprocess.PIPE)
        while out.stat().st_size < 200_000:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    assert proc.returncode == 0 and took < 1.0, (took, err)
    assert b"stopped=SIGTERM" in err
    first = [json.loads(line)["id"] for line in out.read_bytes().splitlines()]
    rest = plugin.run().ids
    assert len(first) + len(rest) == len(set(first + rest)) == 20000  # not even one repeat


def test_sigterm_during_a_retry_backoff_is_immediate(plugin: Plugin, model, sim, now):
    model.generate(10, now - DAY, now - 120)
    sim.faults = lambda n: "503"
    plugin.configure(api={"retry_backoff_seconds": 5, "max_retries": 8})
    proc = subprocess.Popen(plugin.cmd("run"), env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 1.0 and proc.returncode == 0 and out == b""
    state = plugin.state()
    assert state["high_water"] == state["origin"]


def test_a_reader_closing_stdout_ends_the_run_without_committing(plugin: Plugin, model, now):
    model.generate(3000, now - DAY, now - 120)
    plugin.configure(api={"page_size": 5000})  # one page, far larger than a pipe buffer
    proc = subprocess.Popen(plugin.cmd("run"), env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(50):
        proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=20) == 74
    assert "stdout was closed" in err and "Traceback" not in err and "Exception ignored" not in err
    state = plugin.state()
    assert state["high_water"] == state["origin"] and state["seen"] == 0
    assert len(plugin.run().ids) == 3000


def test_sighup_rereads_the_config_in_follow_mode(plugin: Plugin, model, now):
    model.generate(30, now - DAY, now - 120)
    plugin.configure(collect={"interval_seconds": 0.3})
    proc = plugin.start("run", "--follow")
    time.sleep(1.5)
    plugin.config_path.write_text("[api\nbroken")
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert proc.poll() is None  # a broken config does not stop a running collector
    plugin.configure(api={"page_size": 7}, collect={"interval_seconds": 0.3})
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    stderr = err.decode()
    assert "config not reloaded" in stderr and "SIGHUP: config reloaded" in stderr
    assert stderr.count("poll finished: ") >= 3 and stderr.count("run finished: ") == 1
    assert any("limit=7&" in u for u in model.requests)
    assert len(out.splitlines()) == 30


def test_follow_keeps_going_through_an_api_outage(plugin: Plugin, model, sim, now):
    model.generate(20, now - DAY, now - 120)
    down = {"on": True}
    sim.faults = lambda n: "503" if down["on"] else None
    plugin.configure(collect={"interval_seconds": 0.3}, api={"max_retries": 1})
    proc = plugin.start("run", "--follow")
    time.sleep(1.5)
    down["on"] = False
    time.sleep(6)  # the first retry comes 5 s after the failure
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and len(out.splitlines()) == 20
    assert err.count(b"retrying every 5s") == 1 and b"recovered: network" in err


def test_the_key_appears_nowhere(plugin: Plugin, model, sim, now, tmp_path):
    model.generate(300, now - DAY, now - 120)
    model.side_effects = True
    sim.faults = random_faults(0.3, seed=9)
    plugin.configure(api={"page_size": 50, "max_retries": 10})
    outputs = [plugin.run("--log-level", "debug", "run"), plugin.run("--log-level", "debug", "check"),
               plugin.run("key", "status"), plugin.run("status", "--json"), plugin.run("state", "show"),
               plugin.run("--log-format", "json", "--log-level", "debug", "run")]
    wrong = "sk-ant-api01-another-secret-key-that-is-wrong-0000"
    outputs.append(plugin.run("--log-level", "debug", "run", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=wrong)))
    assert outputs[0].rc == 0 and outputs[1].rc == 0 and outputs[-1].rc == 77
    for out in outputs:
        for secret in (KEY, wrong):
            assert secret.encode() not in out.stdout and secret not in out.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data and wrong.encode() not in data, path
    assert "sk-ant-api01-…wxyz" in outputs[2].stdout.decode()  # key status: prefix and last 4 only


def test_a_key_echoed_back_by_a_proxy_is_redacted_everywhere(httpserver, tmp_path):
    """A debugging proxy answers 502 with the request headers in its body: the error text is
    logged, recorded as last_error, and printed by check, status and state show."""
    from werkzeug import Response

    def echo(request):
        key = request.headers.get("x-api-key")
        return Response(f"<html>502 upstream failed, x-api-key: {key}<br>{request.headers}</html>", status=502,
                        content_type="text/html")

    httpserver.expect_request("/v1/compliance/activities").respond_with_handler(echo)
    plugin = Plugin(tmp_path, httpserver.url_for("").rstrip("/"))
    plugin.configure(api={"max_retries": 0})
    outputs = [plugin.run(), plugin.run("check"), plugin.run("status", "--json"), plugin.run("state", "show")]
    assert outputs[0].rc == 69 and outputs[1].rc == 69
    assert "[REDACTED]" in outputs[0].stderr and "[REDACTED]" in outputs[1].stdout.decode()
    for out in outputs:
        assert KEY.encode() not in out.stdout and KEY not in out.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
