"""Any input, no traceback: CLI arguments, config values and state contents an operator (or a
bad disk) can produce end in a documented exit code with one error line, never 70.

The named cases are the ones found by hand; Hypothesis then looks for more.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import tempfile
from pathlib import Path

import pytest
import requests
from helpers import KEY, toml_dumps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from anthropic_compliance_input.cli import main
from anthropic_compliance_input.config import Config, load_config, parse_config
from anthropic_compliance_input.errors import Exit, PluginError
from anthropic_compliance_input.keys import lookup
from anthropic_compliance_input.state import StateStore

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _keep_signals():
    """`run` installs its own handlers; put pytest's back after each test."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM)}
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.fixture
def dead_api(monkeypatch) -> str:
    monkeypatch.setenv("ANTHROPIC_COMPLIANCE_API_KEY", KEY)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens: 69 at once


def invoke(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def config_file(where: Path, url: str, **collect) -> str:
    path = where / "config.toml"
    path.write_text(toml_dumps({"api": {"base_url": url, "max_retries": 0, "timeout_seconds": 2},
                                "state": {"path": str(where / "state.db")}, "collect": collect}))
    return str(path)


def assert_clean(code: int, err: str) -> None:
    assert code != Exit.SOFTWARE and "Traceback" not in err, err
    assert code in {int(c) for c in Exit}, code
    if code not in (0, 1):
        assert len([line for line in err.splitlines() if "ERROR" in line or "error:" in line]) == 1, err


@pytest.mark.parametrize("argv, code", [
    (["run", "--since", "0001-01-01"], 64), (["run", "--since", "100000000d"], 64),
    (["run", "--since", "2099-01-01"], 64), (["run", "--max-runtime", "nan"], 64),
    (["run", "--max-runtime", "inf"], 64), (["state", "reset", "--since", "0999-06-01"], 64),
    (["status", "--max-age", "1e400"], 64), (["simulate", "--rate", "nan"], 64),
    (["state", "reset", "--since", "1h", "--yes"], 64),
])
def test_the_inputs_found_by_hand_are_usage_errors(capsys, dead_api, tmp_path, argv, code):
    cfg = config_file(tmp_path, dead_api)
    result, err = invoke(capsys, ["--config", cfg, *argv])
    assert result == code and "Traceback" not in err and err.lower().count("error") == 1, err
    assert not (tmp_path / "state.db").exists()  # refused before anything was written


@pytest.mark.parametrize("collect, state_path, needle", [
    ({"initial_lookback": "100000000d"}, None, "initial_lookback"),
    ({"late_lookback": "1000000000w"}, None, "late_lookback"),
    ({"overlap_seconds": float("inf")}, None, "overlap_seconds"),
    ({}, "/", "state.path"), ({}, ".", "state.path"),
    # found by an audit: each of these loaded, then ended in a traceback (70) or a spinning --follow
    *[({}, {"api": {"base_url": url}}, "api.base_url") for url in (
        "http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://127.0.0.1:0", "https://exa mple.com",
        "https://%zz", "https://a..b", "https://" + "a" * 300, "https://user:pw@api.example")],
    *[({}, {"output": {"forward_host": host}}, "output.forward_host") for host in ("", "unix://", "exa mple")],
    ({"interval_seconds": 1e-300}, None, "interval_seconds"),
    *[({}, {"api": {"activity_types": [kind]}}, "api.activity_types") for kind in ("", "a\nb", "a\x00b")],
    # found by an adversarial review: a deep window inside the settle delay would log a proof of nothing
    ({"settle_delay_seconds": 900, "deep_reconcile_interval": "1h", "deep_reconcile_lookback": "10m"}, None,
     "deep_reconcile_lookback"),
])
def test_config_values_found_by_hand_are_configuration_errors(collect, state_path, needle):
    doc = {"collect": collect}
    if isinstance(state_path, dict):
        doc.update(state_path)
    elif state_path:
        doc["state"] = {"path": state_path}
    with pytest.raises(PluginError) as caught:
        parse_config(doc, "config.toml")
    assert caught.value.code == Exit.CONFIG and needle in str(caught.value)


def test_a_tilde_in_a_path_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = parse_config({"state": {"path": "~/state.db"}}, "config.toml")
    assert cfg.state.path == str(tmp_path / "state.db")
    (tmp_path / "c.toml").write_text('[collect]\ninterval_seconds = 7\n')
    assert load_config("~/c.toml").config.collect.interval_seconds == 7  # --config
    monkeypatch.setenv("ANTHROPIC_COMPLIANCE_INPUT_CONFIG", "~/c.toml")
    assert load_config(None).config.collect.interval_seconds == 7
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv("ANTHROPIC_COMPLIANCE_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_COMPLIANCE_API_KEY_FILE", "~/key")
    found, _ = lookup(Config())
    assert found is not None and found.key == KEY


@pytest.mark.parametrize("argv", [["--config", "", "status"], ["run", "--since", ""], ["state", "reset", "--since", " ", "--yes"],
                                  ["key", "status", "--profile", ""], ["--log-target", "", "status"]])
def test_an_empty_argument_is_a_usage_error_not_a_default(capsys, dead_api, tmp_path, argv):
    """Found by an audit: `--config ""` quietly meant the built-in defaults (and api.anthropic.com),
    `state reset --since "" --yes` deleted the state."""
    if argv[0] != "--config":
        argv = ["--config", config_file(tmp_path, dead_api), *argv]
    code, err = invoke(capsys, argv)
    assert code == Exit.USAGE and "must not be empty" in err, err


def test_a_forward_host_that_loads_is_one_a_socket_can_use(monkeypatch, tmp_path):
    """Found by an adversarial review: "[::1]" loaded and failed every connect (69); a unix
    socket path with ~ was checked expanded but used as written."""
    monkeypatch.setenv("HOME", str(tmp_path))
    out = parse_config({"output": {"forward_host": "[::1]"}}, "config.toml").output
    assert socket.getaddrinfo(out.forward_host, out.forward_port)
    out = parse_config({"output": {"forward_host": "unix://~/fluent.sock"}}, "config.toml").output
    assert out.forward_host == f"unix://{tmp_path}/fluent.sock"


@pytest.mark.parametrize("what", ["config", "key file"])
@pytest.mark.parametrize("kind", ["fifo", "device", "huge", "socket", "through-a-file"])
def test_a_config_or_key_file_that_is_not_a_small_regular_file_is_refused_not_a_hang(
        capsys, dead_api, tmp_path, monkeypatch, what, kind):
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target, 0o600)  # nobody writes: a plain open() would block for ever
    elif kind == "socket":  # open() fails with ENXIO
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(target))
        target.chmod(0o600)
    elif kind == "through-a-file":  # ENOTDIR
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "key"
    elif kind == "device":
        target = Path("/dev/zero")  # never ends
    else:
        target.write_bytes(b"#" * (2 << 20))
        target.chmod(0o600)
    if what == "config":
        code, err = invoke(capsys, ["--config", str(target), "status"])
    else:
        monkeypatch.delenv("ANTHROPIC_COMPLIANCE_API_KEY")
        cfg = tmp_path / "c.toml"
        cfg.write_text(toml_dumps({"api": {"base_url": dead_api, "max_retries": 0}, "key": {"file": str(target)},
                                   "state": {"path": str(tmp_path / "state.db")}}))
        code, err = invoke(capsys, ["--config", str(cfg), "run"])
    assert code == Exit.CONFIG and "Traceback" not in err, err
    assert any(why in err for why in ("regular file", "larger than", "readable or writable by others",
                                      "Not a directory", "does not exist", "file not found")), err


base_urls = st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
                      st.sampled_from(["http", "https"]),
                      st.sampled_from(["127.0.0.1", "[::1]", "localhost"]) | st.text(max_size=12),
                      st.just("") | st.text(max_size=7).map(lambda p: ":" + p),
                      st.just("") | st.text(max_size=10).map(lambda p: "/" + p))


@FAST
@given(url=base_urls)
def test_any_base_url_is_refused_at_load_or_usable_by_requests(url):
    """Found by an audit: a port of 99999 or a host with a space loaded, then crashed requests."""
    try:
        cfg = parse_config({"api": {"base_url": url}}, "config.toml")
    except PluginError as exc:
        assert exc.code == Exit.CONFIG
        return
    base = cfg.api.base_url
    requests.Request("GET", f"{base}/v1/compliance/activities?limit=1").prepare()  # what the client sends
    parse_url(base)


text = st.one_of(st.text(max_size=30), st.sampled_from(
    ["0", "-1", "1e400", "nan", "inf", "7d", "2026-01-01", "2026-02-30", "9999-12-31T23:59:59-23:59",
     "0001-01-01T00:00:00+01:00", "1h30m", "100000000000d", " ", "\x00", "sk-ant-api01-oops"]))


@FAST
@given(since=text, runtime=text)
def test_any_run_arguments(capsys, dead_api, since, runtime):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_file(Path(tmp), dead_api)
        assert_clean(*invoke(capsys, ["--config", cfg, "run", "--since", since, "--max-runtime", runtime]))


@FAST
@given(since=text, age=text)
def test_any_state_reset_and_status_arguments(capsys, dead_api, since, age):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_file(Path(tmp), dead_api)
        assert_clean(*invoke(capsys, ["--config", cfg, "state", "reset", "--since", since]))
        assert_clean(*invoke(capsys, ["--config", cfg, "status", "--max-age", age]))


values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)
SECTIONS = {name: list(field.annotation.model_fields) for name, field in Config.model_fields.items()}  # every key
config_docs = st.dictionaries(st.sampled_from(sorted(SECTIONS)), st.dictionaries(
    st.sampled_from(sorted({k for keys in SECTIONS.values() for k in keys})), values, max_size=4), max_size=3)


@FAST
@given(doc=config_docs)
def test_any_config_values(doc):
    try:
        parse_config(doc, "config.toml")
    except PluginError as exc:
        assert exc.code == Exit.CONFIG and "\n" not in str(exc)


@FAST
@given(target=st.text(max_size=40).filter(lambda t: not t.startswith(("-", "file:")))
       | st.text(max_size=30).filter(lambda n: "/" not in n).map(lambda n: "file:" + n))
def test_any_log_target(capsys, dead_api, target):
    """Whatever --log-target says: the command still runs, logging to stderr if it must.
    (A file target is kept inside a temporary directory.)"""
    with tempfile.TemporaryDirectory() as tmp:
        if target.startswith("file:"):
            target = f"file:{tmp}/{target[5:]}"
        code, err = invoke(capsys, ["--log-target", target, "--config", config_file(Path(tmp), dead_api), "status"])
    if not target.strip() or "\x00" in target:
        assert code == Exit.USAGE and "must not be empty" in err, err
    else:
        assert code in (Exit.OK, Exit.STALE) and "Traceback" not in err


@FAST
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_config_file_bytes(capsys, dead_api, raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_bytes(raw)
        assert_clean(*invoke(capsys, ["--config", str(path), "status"]))


v1_docs = st.fixed_dictionaries({
    "version": st.sampled_from([1, 1, 1, 2, "1", None]),
    "cursor": st.one_of(values, st.fixed_dictionaries({"origin": values | st.just("2026-11-01T00:00:00Z"),
                                                        "high_water": values | st.just("garbage")})),
    "seen": st.one_of(values, st.dictionaries(st.text(max_size=5), values, max_size=3)),
    "late_seen": st.one_of(values, st.dictionaries(st.text(max_size=5), values, max_size=3)),
    "stats": values,
})


@FAST
@given(doc=v1_docs)
def test_any_version_1_state_file(capsys, dead_api, doc):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_file(Path(tmp), dead_api)
        (Path(tmp) / "state.db").write_text(json.dumps(doc))
        for argv in (["status"], ["state", "show"], ["run"]):
            assert_clean(*invoke(capsys, ["--config", cfg, *argv]))


@FAST
@given(row=st.dictionaries(st.sampled_from(["origin", "high_water", "seen_floor", "late_floors", "totals", "runs",
                                            "clock_skew", "newest_activity", "last_error"]), values, max_size=6))
def test_any_state_row_in_the_database(capsys, dead_api, row):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_file(Path(tmp), dead_api)
        store = StateStore(Path(tmp) / "state.db")
        from anthropic_compliance_input.state import State

        store.commit(State.starting_at(1_790_000_000.0))
        store.close()
        with sqlite3.connect(Path(tmp) / "state.db") as db:
            db.execute("UPDATE meta SET value = ? WHERE name = 'state'", (json.dumps(row),))
        for argv in (["status"], ["state", "show"], ["run"]):
            assert_clean(*invoke(capsys, ["--config", cfg, *argv]))


def test_a_key_with_non_ascii_characters_is_a_configuration_error(capsys, dead_api, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_COMPLIANCE_API_KEY", "sk-ant-api01-ключключключключX")
    cfg = config_file(tmp_path, dead_api)
    code, err = invoke(capsys, ["--config", cfg, "run"])
    assert code == Exit.CONFIG and "non-ASCII" in err and "ключ" not in err
    assert_clean(code, err)


def test_a_state_path_with_an_overlong_name_or_a_fifo_is_a_clear_error(capsys, dead_api, tmp_path):
    import os

    cfg = Path(config_file(tmp_path, dead_api))
    long_name = cfg.read_text().replace("state.db", "a" * 300 + ".db")
    cfg.write_text(long_name)
    for argv in (["status"], ["state", "show"], ["run"]):
        code, err = invoke(capsys, ["--config", str(cfg), *argv])
        assert code == Exit.CONFIG and "longer than the filesystem allows" in err
    cfg = Path(config_file(tmp_path, dead_api))
    os.mkfifo(tmp_path / "state.db")  # a FIFO would block the open forever
    for argv in (["status"], ["state", "show"], ["run"]):
        code, err = invoke(capsys, ["--config", str(cfg), *argv])
        assert code == Exit.CONFIG and "not a regular file" in err, err


def test_a_missing_ca_bundle_is_a_configuration_error_not_a_traceback(capsys, dead_api, tmp_path):
    cfg = Path(config_file(tmp_path, dead_api))
    cfg.write_text(cfg.read_text().replace("[api]\n", f'[api]\nca_bundle = "{tmp_path}/missing.pem"\n'))
    for argv in (["run"], ["check"]):
        code, err = invoke(capsys, ["--config", str(cfg), *argv])
        assert code == Exit.CONFIG and "Traceback" not in err


def test_simulate_on_a_busy_port_is_one_error_line(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, err = invoke(capsys, ["simulate", "--port", str(busy.getsockname()[1])])
    assert code == Exit.TEMPFAIL and "cannot listen" in err and "Traceback" not in err
