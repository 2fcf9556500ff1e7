"""Config errors: one clear line on stderr naming the file and the key, exit 78, no traceback."""

from __future__ import annotations

import subprocess

import pytest

from helpers import KEY, Plugin, assert_one_line_error, child_env, plugin_cmd


@pytest.mark.parametrize("section,keys,needles", [
    ({"api": {"page_size": 6000}}, None, ["api.page_size", "less than or equal to 5000"]),
    ({"api": {"pagesize": 10}}, None, ["api.pagesize: unknown key"]),
    ({"api": {"base_url": "http://api.example.com"}}, None, ["api.base_url", "https"]),
    ({"api": {"activity_types": ["a"], "exclude_activity_types": ["b"]}}, None, ["cannot both be set"]),
    ({"collect": {"initial_lookback": "yesterday"}}, None, ["collect.initial_lookback", "not a duration"]),
    ({"output": {"mode": "kafka"}}, None, ["output.mode"]),
])
def test_bad_config_values_name_the_file_and_the_key(plugin: Plugin, section, keys, needles):
    plugin.configure(**section)
    result = plugin.run()
    assert_one_line_error(result, 78, str(plugin.config_path), *needles)


def test_invalid_toml_and_missing_file(plugin: Plugin, tmp_path):
    plugin.config_path.write_text("[api\nbase_url = 1\n")
    assert_one_line_error(plugin.run(), 78, "not valid TOML", "line 1")
    missing = tmp_path / "nope.toml"
    result = subprocess.run(plugin_cmd("--config", str(missing), "run"), env=child_env(), capture_output=True)
    assert result.returncode == 78 and b"file not found" in result.stderr and b"Traceback" not in result.stderr


def test_a_key_in_the_config_file_is_refused(plugin: Plugin):
    plugin.config_path.write_text(plugin.config_path.read_text() + f'\n[extra]\napi_key = "{KEY}"\n')
    result = plugin.run()
    assert_one_line_error(result, 78, "looks like an API key", "key set")
    assert KEY not in result.stderr


def test_the_shipped_config_lists_every_key_with_its_default():
    """conf/config.toml is the reference operators copy: it parses to exactly the defaults and
    names every field (commented-out optional paths count)."""
    from pathlib import Path

    from anthropic_compliance_input.config import Config, load_config

    path = Path(__file__).resolve().parent.parent / "conf" / "config.toml"
    assert load_config(str(path)).config == Config()
    text = path.read_text()
    for section, model in Config.model_fields.items():
        assert f"[{section}]" in text
        for name in model.annotation.model_fields:
            assert f"{name} = " in text or f"# {name} = " in text, f"{section}.{name} missing"


def test_config_types_are_strict_not_coerced(tmp_path):
    """`page_size = "100"` is a typo somewhere (a template that quoted every value): refuse it."""
    from anthropic_compliance_input.config import load_config
    from anthropic_compliance_input.errors import PluginError

    for section, line in (("api", 'page_size = "100"'), ("api", "timeout_seconds = \"30\""),
                          ("collect", "interval_seconds = true"), ("output", 'forward_port = "24224"'),
                          ("api", "max_retries = 3.0")):
        path = tmp_path / "c.toml"
        path.write_text(f"[{section}]\n{line}\n")
        try:
            load_config(str(path))
        except PluginError as exc:
            assert exc.code == 78 and line.split(" =")[0] in exc.message, exc.message
        else:
            raise AssertionError(f"{line} was accepted")
    path.write_text("[api]\npage_size = 100\ntimeout_seconds = 30\n[collect]\ninterval_seconds = 60\n")
    assert load_config(str(path)).config.api.timeout_seconds == 30.0  # an integer for a float is fine


def test_the_prometheus_alert_rules_pass_promtool():
    """conf/prometheus: stale for 24 h, an error for 15 min, checked and unit-tested by promtool
    (Debian's prometheus package; CI installs it)."""
    import shutil
    import subprocess
    from pathlib import Path

    import pytest
    from helpers import IN_CI

    promtool = shutil.which("promtool")
    if promtool is None and not IN_CI:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    rules = Path(__file__).resolve().parent.parent / "conf" / "prometheus"
    for argv in (["check", "rules", "anthropic-compliance-input.rules.yml"],
                 ["test", "rules", "anthropic-compliance-input.rules.test.yml"]):
        done = subprocess.run([promtool or "promtool", *argv], cwd=rules, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_man_page_lists_every_config_key_with_its_default():
    import subprocess
    import sys
    from pathlib import Path

    from anthropic_compliance_input.config import Config

    root = Path(__file__).resolve().parent.parent
    page = subprocess.run([sys.executable, str(root / "packaging" / "manpage.py")], capture_output=True,
                          text=True, check=True).stdout
    section = page.split(".SH CONFIGURATION")[1].split(".SH FILES")[0].replace("\\-", "-")
    for name, field in Config.model_fields.items():
        assert f"[{name}]" in section
        for key in field.annotation.model_fields:
            assert f"\n{key} = " in section, key
    assert 'forward_ack_timeout_seconds = 30.0' in section and 'target = "stderr"' in section


def test_the_lateness_defaults_cover_a_weekend_and_the_readme_states_each_limit():
    """Found on 0.1: late_lookback was 72 h, less than "two business days" over a weekend (Friday
    evening to Tuesday morning is 96 h), and no document said what arrives too late to be read."""
    from datetime import timedelta
    from pathlib import Path

    from anthropic_compliance_input.config import Config

    collect = Config().collect
    assert collect.late_lookback >= timedelta(hours=120)
    assert set(collect.late_activity_types) == {"anthropic_access", "cmek_preserve"}
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    limits = readme[readme.index("**Lateness limits, plainly.**"):]
    for fact in ("settle_delay_seconds + overlap_seconds` (6 minutes with the defaults)",
                 "within `late_lookback` (7 days)", "up to 96 hours", "is not delivered by the regular windows",
                 "deep_reconcile_interval"):
        assert fact in limits, fact
