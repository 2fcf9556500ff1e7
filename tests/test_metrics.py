"""The Prometheus textfile: written after every poll and every failure, parsed by
prometheus_client's own parser, its counters equal to what was printed, its error gauge naming
the condition that holds."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import Plugin, child_env, read_metrics

DAY = 86400.0
P = "anthropic_compliance_input_"
NAMES = {"up", "last_success_timestamp_seconds", "last_attempt_timestamp_seconds",
         "newest_activity_timestamp_seconds", "activities_emitted_total", "activities_rejected_total",
         "duplicates_skipped_total", "requests_total", "rate_limit_remaining", "clock_skew_seconds", "error"}
REASONS = {"auth", "config", "network", "rate_limited", "lock", "disk", "data", "stdout"}


def held(m: dict) -> list[str]:
    assert set(m[P + "error"]) == REASONS
    return [reason for reason, value in m[P + "error"].items() if value == 1]


def test_metrics_after_polls_count_what_was_printed(plugin: Plugin, model, now, tmp_path):
    prom = tmp_path / "m.prom"
    plugin.configure(metrics={"textfile": str(prom)}, api={"page_size": 40})
    model.generate(100, now - DAY, now - 3600)
    model.add(model.factory.make(now - 7200, "claude_chat_created", id=17))  # rejected: a number for an id
    first = plugin.run()
    m = read_metrics(prom)
    assert {name.removeprefix(P) for name in m} == NAMES
    assert m[P + "activities_emitted_total"] == len(first.lines) == 100
    assert m[P + "activities_rejected_total"] == 1 and m[P + "up"] == 1 and held(m) == []
    requests = int(re.search(r"requests=(\d+)", first.stderr).group(1))
    assert m[P + "requests_total"] == {"ok": requests, "retry": 0.0, "error": 0.0}
    assert m[P + "newest_activity_timestamp_seconds"] == max(
        __import__("anthropic_compliance_input.timeutil", fromlist=["epoch"]).epoch(r["created_at"]) for r in first.lines)
    model.generate(20, now - 250, now - 120)  # inside the overlap behind the cursor
    second = plugin.run()
    m = read_metrics(prom)  # counters carry over from the state: they survive restarts
    assert m[P + "activities_emitted_total"] == len(first.lines) + len(second.lines) == 120
    assert m[P + "rate_limit_remaining"] > 0 and m[P + "clock_skew_seconds"] == 0


def test_metrics_after_each_kind_of_failure(plugin: Plugin, model, sim, now, tmp_path):
    prom = tmp_path / "m.prom"
    plugin.configure(metrics={"textfile": str(prom)}, api={"max_retries": 1})
    model.generate(10, now - DAY, now - 3600)
    assert plugin.run().rc == 0

    def fails(reason: str, code: int, result) -> dict:
        assert result.rc == code, result.stderr
        m = read_metrics(prom)
        assert held(m) == [reason] and m[P + "up"] == 0
        assert m[P + "activities_emitted_total"] == 10  # still the totals of what was printed
        return m

    fails("config", 78, plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=None)))
    fails("auth", 77, plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-" + "x" * 60)))
    sim.faults = lambda n: "503"
    m = fails("network", 69, plugin.run())
    assert m[P + "requests_total"]["retry"] >= 1 and m[P + "requests_total"]["error"] >= 1
    sim.faults = lambda n: "429"
    fails("rate_limited", 75, plugin.run())
    sim.faults = None
    plugin.configure(metrics={"textfile": str(prom)}, api={"activity_types": ["no_such_type"]})
    fails("data", 65, plugin.run())
    plugin.configure(metrics={"textfile": str(prom)})
    model.generate(5, now - 250, now - 120)
    with open("/dev/full", "wb") as full:
        import subprocess

        done = subprocess.run(plugin.cmd("run"), env=child_env(), stdout=full, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 74 and held(read_metrics(prom)) == ["stdout"]
    assert plugin.run().rc == 0
    m = read_metrics(prom)
    assert held(m) == [] and m[P + "up"] == 1 and m[P + "activities_emitted_total"] == 15


def test_the_alert_rules_use_the_metric_names_the_plugin_writes():
    rules = (Path(__file__).resolve().parent.parent / "conf/prometheus/anthropic-compliance-input.rules.yml").read_text()
    used = set(re.findall(r"anthropic_compliance_input_(\w+)", rules))
    assert used and used <= {name.removesuffix("_total") for name in NAMES} | NAMES
