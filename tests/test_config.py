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
