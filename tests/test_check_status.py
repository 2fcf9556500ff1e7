"""`check` and `status`: what an on-call engineer reaches for."""

from __future__ import annotations

import json
import time

from helpers import Plugin, child_env


def steps(output: bytes) -> dict[str, str]:
    return {line.split()[0]: line for line in output.decode().splitlines()}


def test_check_all_steps_pass(plugin: Plugin, model, now):
    model.generate(3, now - 3600, now - 120)
    result = plugin.run("check")
    assert result.rc == 0, result.stdout
    s = steps(result.stdout)
    assert list(s) == ["config", "key", "state", "api"]
    assert all(" ok " in line for line in s.values())
    assert str(plugin.config_path) in s["config"]
    assert "ANTHROPIC_COMPLIANCE_API_KEY: sk-ant-api01-…wxyz" in s["key"]
    assert "is writable (probe file written and removed)" in s["state"]
    assert "rate limit 599/600 requests left" in s["api"] and "organization " in s["api"]
    assert "limit=1&" in model.requests[-1]


def test_check_config_step_fails(plugin: Plugin):
    plugin.configure(api={"page_size": 0})
    result = plugin.run("check")
    assert result.rc == 78 and "config  FAIL" in result.stdout.decode() and "api.page_size" in result.stdout.decode()


def test_check_key_step_fails(plugin: Plugin):
    result = plugin.run("check", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=None))
    s = steps(result.stdout)
    assert result.rc == 78 and "FAIL" in s["key"] and "no API key found" in s["key"]
    assert "skipped: no key" in s["api"] and " ok " in s["state"]


def test_check_state_step_fails(plugin: Plugin, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    plugin.configure(state={"path": str(blocker / "default.json")})
    result = plugin.run("check")
    s = steps(result.stdout)
    assert result.rc == 78 and "FAIL" in s["state"] and "is not writable" in s["state"]
    assert "vector for Vector" in s["state"] and " ok " in s["api"]


def test_check_api_step_fails(plugin: Plugin):
    result = plugin.run("check", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-revoked-0000000000000000"))
    s = steps(result.stdout)
    assert result.rc == 77 and "FAIL" in s["api"] and "401 authentication_error" in s["api"]


def test_status_before_any_run_is_non_zero(plugin: Plugin):
    result = plugin.run("status", "--max-age", "24h")
    assert result.rc == 1 and b"never_run" in result.stdout
    assert plugin.run("status").rc == 1


def test_status_max_age_and_json(plugin: Plugin, model, now):
    model.generate(10, now - 3600, now - 120)
    assert plugin.run().rc == 0
    fresh = plugin.run("status", "--max-age", "1h", "--json")
    assert fresh.rc == 0
    doc = json.loads(fresh.stdout)  # exactly one JSON object
    assert doc["status"] == "ok" and doc["healthy"] is True and doc["emitted"] == 10
    assert doc["last_success"].endswith("Z") and doc["high_water"].endswith("Z")
    assert 55 < doc["lag_seconds"] < 120 and doc["newest_activity_age_seconds"] >= 120
    text = plugin.run("status")
    assert text.rc == 0 and b"last_success" in text.stdout and b"emitted" in text.stdout
    time.sleep(1.2)
    stale = plugin.run("status", "--max-age", "1s", "--json")
    assert stale.rc == 1 and json.loads(stale.stdout)["stale"] == ["last_success", "newest_activity"]
    assert plugin.run("status", "--max-age", "soon").rc == 64


def test_status_shows_the_last_error(plugin: Plugin, sim, now):
    assert plugin.run().rc == 0
    sim.faults = lambda n: "503"
    plugin.configure(api={"max_retries": 1})
    assert plugin.run().rc == 69
    doc = json.loads(plugin.run("status", "--json").stdout)
    assert "503" in doc["last_error"] and doc["last_error_at"].endswith("Z")
    assert doc["error"] == "network" and doc["up"] == 0


def test_check_changes_nothing_it_reports_a_missing_state_directory(plugin: Plugin, tmp_path):
    state_dir = tmp_path / "not-yet" / "deeper"
    plugin.configure(state={"path": str(state_dir / "default.db")})
    result = plugin.run("check")
    s = steps(result.stdout)
    assert result.rc == 0 and " ok " in s["state"] and "does not exist yet; the first run creates it" in s["state"]
    assert not (tmp_path / "not-yet").exists()  # check created nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]
    assert plugin.run().rc == 0 and state_dir.is_dir()  # run does


def test_check_passes_a_key_of_an_unknown_shape_when_the_api_takes_it(plugin: Plugin, model):
    """Key prefixes can change: the shape is a warning, the API's answer is the verdict."""
    odd = "sk-ant-compliance07-" + "k" * 60
    model.keys[odd] = {"read:compliance_activities"}
    result = plugin.run("check", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=odd))
    s = steps(result.stdout)
    assert result.rc == 0, result.stdout
    assert " ok " in s["key"] and "warning" in s["key"] and " ok " in s["api"] and odd not in result.stdout.decode()
    refused = plugin.run("check", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-compliance07-" + "r" * 60))
    assert refused.rc == 77 and "the key step warned" in steps(refused.stdout)["api"]


def test_state_show_into_a_reader_that_closes_early_is_quiet(plugin: Plugin, model, now):
    """`state show | head -1`: the reader goes away; no BrokenPipeError traceback."""
    import subprocess

    model.generate(5, now - 86400, now - 3600)
    assert plugin.run().rc == 0
    for argv in (("state", "show"), ("status",), ("status", "--json"), ("key", "status"), ("check",), ("--help",)):
        shell = subprocess.run(["sh", "-c", '"$@" | head -c 1 >/dev/null', "sh", *plugin.cmd(*argv)],
                               env=child_env(), capture_output=True, timeout=60)
        assert b"Traceback" not in shell.stderr and b"Exception ignored" not in shell.stderr, (argv, shell.stderr)


def test_run_summary_counters_are_json_fields(plugin: Plugin, model, now):
    model.generate(12, now - 86400, now - 3600)
    result = plugin.run("--log-format", "json", "run")
    summary = [json.loads(line) for line in result.stderr.splitlines() if "run finished" in line]
    assert len(summary) == 1
    assert summary[0]["emitted"] == 12 and summary[0]["pages"] >= 1 and summary[0]["requests"] >= 1
