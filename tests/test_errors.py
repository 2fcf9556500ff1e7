"""Bad input: one clear line on stderr, the documented exit code, no traceback, nothing lost."""

from __future__ import annotations

import fcntl
import json
import socket

import pytest

from helpers import KEY, Plugin, assert_one_line_error, child_env, plugin_cmd

import subprocess


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


def test_missing_key_lists_every_source_tried(plugin: Plugin):
    env = child_env(ANTHROPIC_COMPLIANCE_API_KEY=None, CREDENTIALS_DIRECTORY=None,
                    ANTHROPIC_COMPLIANCE_API_KEY_FILE=None, DBUS_SESSION_BUS_ADDRESS=None)
    result = plugin.run(env=env)
    assert_one_line_error(result, 78, "no API key found", "ANTHROPIC_COMPLIANCE_API_KEY: unset",
                          "key file: not configured", "systemd credential: $CREDENTIALS_DIRECTORY unset",
                          "OS keyring: Secret Service: no D-Bus session", "key set")


def test_corrupt_state_stops_with_65_and_is_left_untouched(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    plugin.state_path.write_text('{"version": 1, "cursor": {"high_wat')
    before = plugin.state_path.read_bytes()
    assert_one_line_error(plugin.run(), 65, str(plugin.state_path), "state reset --since")
    assert plugin.state_path.read_bytes() == before


def test_unknown_state_version_stops_with_65(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    plugin.state_path.write_text(json.dumps({"version": 99, "cursor": {}, "seen": {}, "late_seen": {}}))
    assert_one_line_error(plugin.run(), 65, "unknown state version 99")


def test_unreachable_api_exits_69_without_moving_the_cursor(plugin: Plugin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    plugin.configure(api={"base_url": f"http://127.0.0.1:{port}", "max_retries": 2})
    result = plugin.run()
    assert_one_line_error(result, 69, "API unreachable", f"127.0.0.1:{port}", "cursor did not move")
    state = plugin.state()
    assert state["high_water"] == state["origin"]
    assert "API unreachable" in state["last_error"]


def test_wrong_key_exits_77_with_the_api_message_and_a_hint(plugin: Plugin):
    result = plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-wrong-key-000000000000000"))
    assert_one_line_error(result, 77, "API 401 authentication_error", "invalid or has been revoked",
                          "request-id req_", "key status")
    assert "sk-ant-api01-wrong-key-000000000000000" not in result.stderr


def test_key_without_scope_exits_77(plugin: Plugin, model):
    model.keys["sk-ant-api01-userdata-only-0000000000000"] = {"read:compliance_user_data"}
    result = plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-userdata-only-0000000000000"))
    assert_one_line_error(result, 77, "403 permission_error", "read:compliance_activities")


def test_filter_the_api_rejects_exits_65(plugin: Plugin):
    plugin.configure(api={"activity_types": ["no_such_type"]})
    assert_one_line_error(plugin.run(), 65, "400 invalid_request_error", "no_such_type", "filters in [api]")


def test_a_second_instance_on_the_same_state_exits_75(plugin: Plugin):
    plugin.state_path.parent.mkdir(parents=True)
    lock = plugin.state_path.with_name("default.db.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = plugin.run()
    assert_one_line_error(result, 75, "another instance holds the state lock")
    assert not plugin.state_path.exists()


def test_since_on_an_existing_state_is_a_usage_error(plugin: Plugin):
    assert plugin.run().rc == 0
    assert_one_line_error(plugin.run("run", "--since", "7d"), 64, "first run only", "state reset --since 7d")


def test_usage_errors_exit_64(plugin: Plugin):
    result = plugin.run("run", "--max-runtime", "-5")
    assert result.rc == 64 and "Traceback" not in result.stderr
    assert plugin.run("frobnicate").rc == 64
    assert plugin.run("run", "--since", "last tuesday").rc == 64
    assert plugin.run("state", "reset").rc == 64


def test_state_reset_requires_since_or_yes_and_then_redelivers(plugin: Plugin, model, now):
    records = model.generate(40, now - 3 * 3600, now - 120)
    assert len(plugin.run().ids) == 40
    assert plugin.run().ids == []
    reset = plugin.run("state", "reset", "--since", "4h")
    assert reset.rc == 0 and b"next run delivers everything from" in reset.stdout
    assert sorted(plugin.run().ids) == sorted(r["id"] for r in records)
    assert plugin.run("state", "reset", "--yes").rc == 0 and not plugin.state_path.exists()


def test_tls_is_verified_and_ca_bundle_is_honoured(plugin: Plugin, model, tmp_path):
    from anthropic_compliance_input.simulator import SimServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    import time

    model.generate(10, time.time() - 3600, time.time() - 120)
    with SimServer(model, tls=(str(cert), str(key))) as server:
        assert server.url.startswith("https://")
        plugin.configure(api={"base_url": server.url, "max_retries": 1})
        untrusted = plugin.run()
        assert_one_line_error(untrusted, 69, "TLS error talking to https://127.0.0.1", "ca_bundle")
        plugin.configure(api={"base_url": server.url, "ca_bundle": str(cert)})
        trusted = plugin.run()
    assert trusted.rc == 0 and len(trusted.ids) == 10
