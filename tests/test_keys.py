"""Issue 5: every key source, in order, the failure message, and a real Secret Service."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import IN_CI, KEY, Plugin, assert_one_line_error, child_env

HERE = Path(__file__).resolve().parent
HAVE_SECRET_SERVICE = all(shutil.which(b) for b in ("dbus-run-session", "gnome-keyring-daemon", "dbus-send"))
needs_secret_service = pytest.mark.skipif(
    not HAVE_SECRET_SERVICE and not IN_CI,
    reason="needs gnome-keyring and dbus (apt-get install gnome-keyring dbus dbus-x11)")

NO_ENV_KEY = dict(ANTHROPIC_COMPLIANCE_API_KEY=None, ANTHROPIC_COMPLIANCE_API_KEY_FILE=None,
                  CREDENTIALS_DIRECTORY=None)


def key_file(tmp: Path, mode: int, key: str = KEY) -> Path:
    path = tmp / "api-key"
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


def test_environment_variable_comes_first(plugin: Plugin, tmp_path):
    env = child_env(ANTHROPIC_COMPLIANCE_API_KEY_FILE=str(key_file(tmp_path, 0o600, "sk-ant-api01-other-000000000000")))
    status = plugin.run("key", "status", env=env)
    assert status.rc == 0 and "the next run uses: ANTHROPIC_COMPLIANCE_API_KEY" in status.stdout.decode()


@pytest.mark.parametrize("via", ["config", "env"])
def test_key_file_from_config_or_environment(plugin: Plugin, model, now, tmp_path, via):
    model.generate(5, now - 3600, now - 120)
    path = key_file(tmp_path, 0o640)
    if via == "config":
        plugin.configure(key={"file": str(path)})
        env = child_env(**NO_ENV_KEY)
    else:
        env = child_env(**{**NO_ENV_KEY, "ANTHROPIC_COMPLIANCE_API_KEY_FILE": str(path)})
    status = plugin.run("key", "status", env=env)
    assert f"the next run uses: key file {path}" in status.stdout.decode()
    assert len(plugin.run(env=env).ids) == 5


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o602])
def test_a_key_file_others_can_read_or_write_is_refused(plugin: Plugin, tmp_path, mode):
    path = key_file(tmp_path, mode)
    result = plugin.run(env=child_env(**{**NO_ENV_KEY, "ANTHROPIC_COMPLIANCE_API_KEY_FILE": str(path)}))
    assert_one_line_error(result, 78, f"key file {path} is readable or writable by others", f"chmod 0600 {path}")


def test_systemd_credential(plugin: Plugin, model, now, tmp_path):
    model.generate(3, now - 3600, now - 120)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "anthropic-compliance-input.api-key").write_text(KEY)
    (creds / "anthropic-compliance-input.api-key").chmod(0o400)
    env = child_env(**{**NO_ENV_KEY, "CREDENTIALS_DIRECTORY": str(creds)})
    status = plugin.run("key", "status", env=env)
    assert "the next run uses: systemd credential" in status.stdout.decode()
    assert "sk-ant-api01-…wxyz" in status.stdout.decode() and KEY not in status.stdout.decode()
    assert len(plugin.run(env=env).ids) == 3


def test_no_source_lists_each_one_with_its_reason_and_the_fix(plugin: Plugin, tmp_path):
    creds = tmp_path / "empty-credentials"
    creds.mkdir()
    env = child_env(**{**NO_ENV_KEY, "CREDENTIALS_DIRECTORY": str(creds)}, DBUS_SESSION_BUS_ADDRESS=None)
    result = plugin.run(env=env)
    assert_one_line_error(result, 78, "ANTHROPIC_COMPLIANCE_API_KEY: unset", "key file: not configured",
                          f"{creds}/anthropic-compliance-input.api-key absent", "no D-Bus session",
                          "normal for a system service", "key set", "LoadCredential=")
    status = plugin.run("key", "status", env=env)
    assert status.rc == 78 and "no key" in status.stdout.decode()


def test_missing_key_lists_every_source_tried(plugin: Plugin):
    env = child_env(ANTHROPIC_COMPLIANCE_API_KEY=None, CREDENTIALS_DIRECTORY=None,
                    ANTHROPIC_COMPLIANCE_API_KEY_FILE=None, DBUS_SESSION_BUS_ADDRESS=None)
    result = plugin.run(env=env)
    assert_one_line_error(result, 78, "no API key found", "ANTHROPIC_COMPLIANCE_API_KEY: unset",
                          "key file: not configured", "systemd credential: $CREDENTIALS_DIRECTORY unset",
                          "OS keyring: Secret Service: no D-Bus session", "key set")


def test_key_set_refuses_a_key_on_the_command_line(plugin: Plugin):
    result = plugin.run("key", "set", KEY)
    # argparse quotes the value it refuses ("unrecognized arguments: sk-ant-..."); the CLI's own
    # parser (_Parser.error in cli.py) redacts it with keyshape.redact_keys before printing
    assert result.rc == 64 and KEY not in result.stderr
    assert "[REDACTED]" in result.stderr, result.stderr


def test_key_shape_warnings(plugin: Plugin):
    api03 = "sk-ant-api03-claude-api-key-not-for-compliance-0000"
    status = plugin.run("key", "status", env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=api03))
    assert "Claude API key (sk-ant-api03-)" in status.stdout.decode() and api03 not in status.stdout.decode()


def test_the_key_reaches_no_argv_no_environment_and_no_file(plugin: Plugin, model, now, tmp_path):
    """A running collector with a key file: /proc shows the key in neither argv nor environ."""
    model.generate(5, now - 3600, now - 120)
    path = key_file(tmp_path, 0o600)
    plugin.configure(key={"file": str(path)}, collect={"interval_seconds": 0.3})
    proc = subprocess.Popen(plugin.cmd("--log-level", "debug", "run", "--follow"), env=child_env(**NO_ENV_KEY),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and len(out.splitlines()) == 5
    for blob in (cmdline, environ, out, err, plugin.state_path.read_bytes()):
        assert KEY.encode() not in blob


@needs_secret_service
def test_real_secret_service_key_set_run_and_delete(plugin: Plugin, model, now, tmp_path):
    model.generate(7, now - 3600, now - 120)
    cli = " ".join(f"'{part}'" for part in plugin.cmd())
    script = tmp_path / "session.sh"
    script.write_text(f"""set -u
printf '%s\\n' "$KEY_FOR_STDIN" | {cli} key set --verify > {tmp_path}/set.out 2> {tmp_path}/set.err; echo $? > {tmp_path}/set.rc
unset KEY_FOR_STDIN
{cli} key status > {tmp_path}/status.out; echo $? > {tmp_path}/status.rc
{cli} run > {tmp_path}/run.out 2> {tmp_path}/run.err; echo $? > {tmp_path}/run.rc
secret-tool lookup service anthropic-compliance-input username default > {tmp_path}/lookup.out || true
{cli} key delete > {tmp_path}/delete.out; echo $? > {tmp_path}/delete.rc
{cli} key status > {tmp_path}/after.out; echo $? > {tmp_path}/after.rc
""")
    env = child_env(**NO_ENV_KEY, PYTHON_KEYRING_BACKEND=None, KEY_FOR_STDIN=KEY,
                    XDG_DATA_HOME=str(tmp_path / "data"), XDG_RUNTIME_DIR=str(tmp_path / "run"))
    (tmp_path / "data").mkdir()
    (tmp_path / "run").mkdir()
    done = subprocess.run([str(HERE / "with-secret-service.sh"), "sh", str(script)], env=env, timeout=120,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    assert read("set.rc").strip() == "0", read("set.err")
    assert "stored sk-ant-api01-…wxyz for profile 'default' in the OS keyring" in read("set.out")
    assert "SecretService" in read("set.out")
    assert read("status.rc").strip() == "0" and "the next run uses: OS keyring" in read("status.out")
    assert read("run.rc").strip() == "0" and len(read("run.out").splitlines()) == 7
    if shutil.which("secret-tool"):
        assert read("lookup.out").strip() == KEY  # stored where other Secret Service tools find it
    assert "deleted the key" in read("delete.out")
    assert read("after.rc").strip() == "78" and "no key stored for profile 'default'" in read("after.out")
    for name in ("set.out", "set.err", "status.out", "run.out", "run.err", "delete.out", "after.out"):
        assert KEY not in read(name)


@needs_secret_service
def test_key_set_verify_refuses_a_key_the_api_rejects(plugin: Plugin, tmp_path):
    bad = "sk-ant-api01-revoked-key-000000000000000000"
    cli = " ".join(f"'{part}'" for part in plugin.cmd())
    env = child_env(**NO_ENV_KEY, PYTHON_KEYRING_BACKEND=None,
                    XDG_DATA_HOME=str(tmp_path / "d"), XDG_RUNTIME_DIR=str(tmp_path / "r"))
    (tmp_path / "d").mkdir()
    (tmp_path / "r").mkdir()
    done = subprocess.run([str(HERE / "with-secret-service.sh"), "sh", "-c",
                           f"echo {bad} | {cli} key set --verify; echo rc=$?; {cli} key status"],
                          env=env, timeout=120, capture_output=True)
    out = done.stdout.decode()
    assert "rc=77" in out and "no key stored" in out and bad not in out + done.stderr.decode()


def test_key_set_checks_the_keyring_before_asking_for_the_key(plugin: Plugin):
    """On a server without a Secret Service, `key set` says so at once: nobody types a key
    into a prompt only to be told it cannot be kept."""
    import os
    import pty

    from helpers import drain_pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(plugin.cmd("key", "set"), env=child_env(**NO_ENV_KEY), stdin=follower,
                            stdout=follower, stderr=follower)
    os.close(follower)
    reader, chunks = drain_pty(leader)
    proc.wait(timeout=30)  # it does not wait for input
    reader.join(10)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 78 and "OS keyring unusable" in tty and "key file" in tty
    assert "Compliance API key" not in tty  # no prompt was shown
