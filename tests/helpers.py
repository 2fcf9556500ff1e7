"""Shared test helpers: a plugin run as a child process the way a shipper runs it (no
PYTHONUNBUFFERED, stdout a pipe), its config, and the one-line-error check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


KEY = "sk-ant-api01-TESTKEY-abcdefghijklmnopqrstuvwxyz-0123456789-wxyz"
IN_CI = os.environ.get("CI") == "true"
needs_root = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI, reason="mounting a tmpfs needs root")


def toml_dumps(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {value(v)}" for k, v in keys.items())
        out.append("")
    return "\n".join(out)


def child_env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.pop("ANTHROPIC_COMPLIANCE_INPUT_CONFIG", None)
    env["ANTHROPIC_COMPLIANCE_API_KEY"] = KEY
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def plugin_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "anthropic_compliance_input", *args]


@dataclass
class Result:
    rc: int
    stdout: bytes
    stderr: str

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.lines]


class Plugin:
    """Writes a config for the simulator and runs the plugin against it."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.url = url
        self.state_path = tmp / "state" / "default.db"
        self.config_path = tmp / "config.toml"
        self.configure()

    def configure(self, **sections: dict[str, Any]) -> Path:
        base: dict[str, dict[str, Any]] = {
            "api": {"base_url": self.url, "page_size": 1000, "retry_backoff_seconds": 0.01, "max_retries": 3,
                    "timeout_seconds": 10},
            "state": {"path": str(self.state_path)},
            "collect": {"settle_delay_seconds": 60, "overlap_seconds": 300, "initial_lookback": "4d"},
        }
        for name, keys in sections.items():
            base.setdefault(name, {}).update(keys)
        self.config_path.write_text(toml_dumps(base))
        return self.config_path

    def cmd(self, *args: str) -> list[str]:
        return plugin_cmd("--config", str(self.config_path), *args)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            input: bytes | None = None) -> Result:
        proc = subprocess.run(self.cmd(*(args or ("run",))), env=env or child_env(), capture_output=True,
                              timeout=timeout, input=input)
        return Result(proc.returncode, proc.stdout, proc.stderr.decode())

    def start(self, *args: str, stdout: Any = subprocess.PIPE, env: dict[str, str] | None = None) -> subprocess.Popen:
        """The plugin in the background (e.g. `run --follow`), as a shipper starts it."""
        return subprocess.Popen(self.cmd(*args), env=env or child_env(), stdout=stdout, stderr=subprocess.PIPE)

    @property
    def rejected_path(self) -> Path:
        return self.state_path.with_name(self.state_path.name + ".rejected.jsonl")

    def state(self) -> dict[str, Any]:
        """What `state show` prints: the cursor, the counters, and the seen-set sizes."""
        result = self.run("state", "show")
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.rc == code, (result.rc, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == b""
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def drain_pty(leader: int) -> tuple[threading.Thread, list[bytes]]:
    """Read the leader side of a pty in a thread until the child side closes (a pty nobody reads
    blocks the child once its small buffer is full). Join the thread, then join the chunks."""
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child side is closed
                return
            if not data:
                return
            chunks.append(data)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, chunks


def wait_until(check: Any, timeout: float, what: str) -> Any:
    """Poll `check()` until it returns something true; fail naming `what`."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def read_metrics(path: Path) -> dict[str, Any]:
    """The textfile parsed with prometheus_client's own parser: {name: value} and
    {name: {label value: value}} for the labelled ones."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.labels:
                out.setdefault(sample.name, {})[next(iter(sample.labels.values()))] = sample.value
            else:
                out[sample.name] = sample.value
    return out


def fill_up(filesystem: Path) -> Path:
    """Fill a (tiny) filesystem to its last block; delete the returned file to free it."""
    filler = filesystem / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler
