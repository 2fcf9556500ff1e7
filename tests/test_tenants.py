"""Many organizations: one instance per tenant, as the systemd template units start them, each
with its own key, config and state; and many collectors of one organization sharing its
request budget without starving one another."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from anthropic_compliance_input.simulator import FeedModel, SimServer
from helpers import child_env, plugin_cmd, toml_dumps, wait_until

UNITS = Path(__file__).resolve().parent.parent / "conf" / "systemd"
DAY = 86400.0


def unit_setting(unit: str, name: str) -> str:
    text = (UNITS / unit).read_text()
    return re.search(rf"^{name}=(.*)$", text, re.M).group(1)  # type: ignore[union-attr]


def as_systemd_would(unit: str, instance: str, etc: Path) -> list[str]:
    """ExecStart of a template unit with %i expanded, the package's paths pointed at the test's."""
    line = unit_setting(unit, "ExecStart").replace("%i", instance)
    argv = shlex.split(line)
    assert argv[0] == "/usr/bin/anthropic-compliance-input"
    return plugin_cmd(*[a.replace("/etc/anthropic-compliance-input/", f"{etc}/") for a in argv[1:]])


def credential_for(unit: str, instance: str) -> tuple[str, str]:
    """(the name the service reads, the per-tenant credential file) from LoadCredentialEncrypted."""
    name, source = unit_setting(unit, "LoadCredentialEncrypted").replace("%i", instance).split(":", 1)
    return name, source


def tenant_key(n: int) -> str:
    return f"sk-ant-api01-TENANT{n:02d}-abcdefghijklmnopqrstuvwxyz-0123456789-wxyz"


@pytest.mark.parametrize("unit", ["anthropic-compliance-input@.service", "anthropic-compliance-input-run@.service"])
def test_two_tenants_each_collect_their_own_organization(tmp_path: Path, unit: str):
    now = time.time()
    model = FeedModel(keys={tenant_key(1): {"read:compliance_activities"}, tenant_key(2): {"read:compliance_activities"}},
                      side_effects=False)
    (org_a, uuid_a), (org_b, uuid_b) = model.factory.orgs
    model.key_orgs = {tenant_key(1): org_a, tenant_key(2): org_b}
    make = model.factory.make
    model.extend([make(now - 3600 + i, "claude_chat_created", organization_id=org_a, organization_uuid=uuid_a)
                  for i in range(300)])
    model.extend([make(now - 3600 + i, "claude_chat_viewed", organization_id=org_b, organization_uuid=uuid_b)
                  for i in range(200)])
    etc = tmp_path / "etc"
    etc.mkdir()
    with SimServer(model) as server:
        procs = {}
        for n, tenant in ((1, "acme"), (2, "globex")):
            (etc / f"{tenant}.toml").write_text(toml_dumps({
                "api": {"base_url": server.url, "page_size": 100, "retry_backoff_seconds": 0.01},
                "state": {"path": str(tmp_path / f"{tenant}.db")},
                "collect": {"initial_lookback": "1d", "interval_seconds": 1}}))
            name, source = credential_for(unit, tenant)
            assert source == f"/etc/credstore.encrypted/anthropic-compliance-input.{tenant}.api-key"
            creds = tmp_path / "credentials" / tenant
            creds.mkdir(parents=True)
            (creds / name).write_text(tenant_key(n) + "\n")
            (creds / name).chmod(0o400)  # as systemd makes it
            env = child_env(ANTHROPIC_COMPLIANCE_API_KEY=None, CREDENTIALS_DIRECTORY=str(creds))
            procs[tenant] = subprocess.Popen(as_systemd_would(unit, tenant, etc), env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines: dict[str, list[bytes]] = {tenant: [] for tenant in procs}
        readers = [threading.Thread(target=lambda t=t, p=p: lines[t].extend(p.stdout), daemon=True)
                   for t, p in procs.items()]
        for reader in readers:
            reader.start()
        for tenant, proc in procs.items():
            if "--follow" in proc.args:  # resident: stop it once its backfill is out
                want = 300 if tenant == "acme" else 200
                wait_until(lambda: len(lines[tenant]) >= want, 60, f"{tenant} to collect")
                time.sleep(1.5)  # a poll more: nothing else arrives
                proc.terminate()
            proc.wait(timeout=120)
            assert proc.returncode == 0, proc.stderr.read().decode()
        for reader in readers:
            reader.join(timeout=10)
        outputs = {t: [orjson.loads(line) for line in ls] for t, ls in lines.items()}
    assert Counter(r["organization_id"] for r in outputs["acme"]) == {org_a: 300}
    assert Counter(r["organization_id"] for r in outputs["globex"]) == {org_b: 200}
    assert {r["type"] for r in outputs["acme"]} == {"claude_chat_created"}


def test_ten_collectors_of_one_organization_share_its_budget(tmp_path: Path):
    """10 instances, one organization, a budget of 40 requests per 4 s (the API's 600/min,
    scaled down), and someone else's connector on it that ignores the budget: every activity
    once per instance, each finishes its backfill, the budget holds, 429s are retried."""
    now = time.time()
    keys = [tenant_key(n) for n in range(10)]
    model = FeedModel(keys={k: {"read:compliance_activities"} for k in keys}, side_effects=False,
                      rate_limit=40, rate_window=4.0)
    org, _ = model.factory.orgs[0]
    model.key_orgs = {k: org for k in keys}
    records = model.generate(2000, now - DAY, now - 300)
    with SimServer(model) as server:
        times: list[float] = []
        original = model.handle

        limited: list[float] = []

        def counted(*args, **kwargs):
            resp = original(*args, **kwargs)
            (limited if resp.status == 429 else times).append(time.monotonic())
            return resp

        model.handle = counted  # type: ignore[method-assign]
        procs = []
        for n, key in enumerate(keys):
            cfg = tmp_path / f"t{n}.toml"
            cfg.write_text(toml_dumps({
                "api": {"base_url": server.url, "page_size": 100, "retry_backoff_seconds": 0.2, "max_retries": 10},
                "state": {"path": str(tmp_path / f"t{n}.db")}, "collect": {"initial_lookback": "2d"}}))
            procs.append(subprocess.Popen(plugin_cmd("--config", str(cfg), "--log-level", "debug", "run"),
                                          env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=key),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        done = threading.Event()

        def other_connector() -> None:
            """Someone else's collector on the same organization, deaf to the rate-limit headers
            (a SIEM's own connector, say): it takes a third of the budget and makes 429s happen."""
            import requests

            while not done.wait(0.3):
                requests.get(server.url + "/v1/compliance/activities?limit=1", headers={"x-api-key": greedy}, timeout=10)

        greedy = tenant_key(10)
        model.keys[greedy] = {"read:compliance_activities"}
        model.key_orgs[greedy] = org
        hammer = threading.Thread(target=other_connector, daemon=True)
        hammer.start()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            results.append((proc.returncode, out, err.decode()))
        done.set()
        hammer.join()
    want = sorted(r["id"] for r in records if r["organization_id"] in (org, None))  # not the other tenant's
    for rc, out, err in results:
        assert rc == 0, err[-2000:]
        assert sorted(orjson.loads(line)["id"] for line in out.splitlines()) == want  # once, none missing
    paced = sum("pacing requests" in err for _, _, err in results)
    assert paced >= 5  # they slowed down before the budget ran out
    worst = max(sum(1 for t in times if start <= t < start + 4.0) for start in times)
    assert worst <= 40, worst  # no 4 s window served more than the budget
    assert limited and sum("HTTP 429" in err for _, _, err in results) >= 1  # 429s happened, and were retried


def test_a_second_tenant_pointed_at_the_first_ones_state_is_refused(tmp_path: Path):
    """A copied config that kept its [state] path: the second tenant would start from the first
    one's cursor and skip its own history. The state remembers its organization."""
    now = time.time()
    model = FeedModel(keys={tenant_key(1): {"read:compliance_activities"}, tenant_key(2): {"read:compliance_activities"}},
                      side_effects=False)
    (org_a, uuid_a), (org_b, uuid_b) = model.factory.orgs
    model.key_orgs = {tenant_key(1): org_a, tenant_key(2): org_b}
    model.extend([model.factory.make(now - 7200 + i, "claude_chat_created", organization_id=org_a,
                                     organization_uuid=uuid_a) for i in range(50)])
    model.extend([model.factory.make(now - 7200 + i, "claude_chat_viewed", organization_id=org_b,
                                     organization_uuid=uuid_b) for i in range(50)])
    cfg = tmp_path / "shared.toml"
    with SimServer(model) as server:
        cfg.write_text(toml_dumps({"api": {"base_url": server.url}, "state": {"path": str(tmp_path / "one.db")}}))
        first = subprocess.run(plugin_cmd("--config", str(cfg), "run"), capture_output=True,
                               env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=tenant_key(1)))
        second = subprocess.run(plugin_cmd("--config", str(cfg), "run"), capture_output=True,
                                env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=tenant_key(2)))
        again = subprocess.run(plugin_cmd("--config", str(cfg), "run"), capture_output=True,
                               env=child_env(ANTHROPIC_COMPLIANCE_API_KEY=tenant_key(1)))
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 50
    err = second.stderr.decode()
    assert second.returncode == 78 and second.stdout == b"" and "Traceback" not in err
    assert f"belongs to organization {org_a}; this key reads organization {org_b}" in err
    assert "give each tenant its own [state] path" in err
    assert again.returncode == 0 and again.stdout == b""  # the first tenant's state is intact


def test_a_tenant_config_that_kept_a_key_file_beside_its_credential_is_refused(tmp_path: Path):
    """A tenant's copy of a config with `[key] file` would read that file before the unit's
    credential: the other tenant's key. Two sources for one service is an error, not a choice."""
    other = tmp_path / "other.key"
    other.write_text(tenant_key(1) + "\n")
    other.chmod(0o600)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "anthropic-compliance-input.api-key").write_text(tenant_key(2) + "\n")
    (creds / "anthropic-compliance-input.api-key").chmod(0o400)
    cfg = tmp_path / "acme.toml"
    cfg.write_text(toml_dumps({"key": {"file": str(other)}, "state": {"path": str(tmp_path / "acme.db")}}))
    env = child_env(ANTHROPIC_COMPLIANCE_API_KEY=None, CREDENTIALS_DIRECTORY=str(creds))
    for args in (("run",), ("key", "status")):
        result = subprocess.run(plugin_cmd("--config", str(cfg), *args), capture_output=True, env=env)
        err = result.stderr.decode() + result.stdout.decode()
        assert result.returncode == 78 and "two key sources" in err and "Traceback" not in err, err
        assert tenant_key(1) not in err and tenant_key(2) not in err
