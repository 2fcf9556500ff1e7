"""The Kubernetes manifests for one tenant (conf/kubernetes): valid for a current Kubernetes in
strict mode, hardened, one replica that cannot run twice, a readiness probe on the health signal,
and Kustomize builds (one tenant, tenant two) whose output is valid too and whose names and
references line up. The builds use kubectl's kustomize (on this machine image; CI must have it)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anthropic_compliance_input.cli import build_parser
from anthropic_compliance_input.config import load_config
from helpers import IN_CI

K8S = Path(__file__).resolve().parent.parent / "conf" / "kubernetes"
KUBERNETES = "1.37.0"  # the newest kubernetes-validate knows; see pyproject's test extras
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")


FILES = {"deployment.yaml": "resident/deployment.yaml", "cronjob.yaml": "scheduled/cronjob.yaml"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    return spec["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" else spec["template"]["spec"]


def test_every_manifest_is_valid_for_a_current_kubernetes_in_strict_mode():
    assert {p.name for p in MANIFESTS} >= {"deployment.yaml", "pvc.yaml", "cronjob.yaml"}
    result = subprocess.run([VALIDATE, "--strict", "-k", KUBERNETES,
                             *map(str, MANIFESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(MANIFESTS), result.stdout


@pytest.mark.parametrize("name", ["deployment.yaml", "cronjob.yaml"])
def test_the_pod_is_hardened_and_reads_its_key_from_a_secret_file(name):
    doc = load(K8S / FILES[name])
    pod = pod_spec(doc)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["ANTHROPIC_COMPLIANCE_API_KEY_FILE"] == mounts["key"] + "/api-key"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["key"]["secret"]["secretName"] == "anthropic-compliance-input-key"
    assert volumes["key"]["secret"]["defaultMode"] == 0o400  # the plugin refuses a key file others can read
    assert volumes["config"]["configMap"]["name"] == "anthropic-compliance-input-config"
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == load(K8S / "base/pvc.yaml")["metadata"]["name"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    build_parser().parse_args(container["args"])  # the plugin's own parser takes them


def test_one_replica_recreated_ready_on_the_health_signal_and_a_cronjob_that_never_overlaps():
    deployment = load(K8S / FILES["deployment.yaml"])
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["run", "--follow"]
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[:3] == ["anthropic-compliance-input", "status", "--max-age"]
    build_parser().parse_args(probe[1:])
    cron = load(K8S / FILES["cronjob.yaml"])
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (job,) = pod_spec(cron)["containers"]
    assert job["args"][0] == "run" and "--follow" not in job["args"]


def test_the_tenant_configs_load_with_the_plugins_strict_model():
    for path in K8S.rglob("config.toml"):
        loaded = load_config(str(path))
        assert loaded.config.state.path.startswith("/var/lib/anthropic-compliance-input/"), path


def kustomize(tmp_path: Path, folder: str) -> list[dict]:
    """`kubectl kustomize` on a copy of conf/kubernetes with a key file in place."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        assert not IN_CI, "kubectl is part of the machine image CI runs on"
        pytest.skip("kubectl (for its kustomize) is not installed")
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S, tree)
    (tree / folder / "api-key").write_text("sk-ant-api01-not-a-real-key\n")
    result = subprocess.run([kubectl, "kustomize", str(tree / folder)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (tmp_path / "rendered.yaml").write_text(result.stdout)
    check = subprocess.run([VALIDATE, "--strict", "-k", KUBERNETES, str(tmp_path / "rendered.yaml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_one_tenant_builds_and_every_reference_resolves(tmp_path):
    docs = {d["kind"]: d for d in kustomize(tmp_path, "tenant")}
    assert set(docs) == {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"}
    volumes = {v["name"]: v for v in pod_spec(docs["Deployment"])["volumes"]}
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert volumes["key"]["secret"]["secretName"] == docs["Secret"]["metadata"]["name"]
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"]["anthropic-compliance-input/tenant"] == "tenant-one"


def test_tenant_two_builds_with_its_own_names_config_and_key(tmp_path):
    docs = {d["kind"]: d for d in kustomize(tmp_path, "overlays/tenant-two")}
    assert set(docs) == {"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"}
    names = {kind: d["metadata"]["name"] for kind, d in docs.items()}
    assert all("-tenant-two" in name for name in names.values()), names
    volumes = {v["name"]: v for v in pod_spec(docs["Deployment"])["volumes"]}
    assert volumes["config"]["configMap"]["name"] == names["ConfigMap"]
    assert volumes["key"]["secret"]["secretName"] == names["Secret"]
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == names["PersistentVolumeClaim"]
    assert docs["ConfigMap"]["data"]["config.toml"] == (K8S / "overlays/tenant-two/config.toml").read_text()
    selector = docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector["anthropic-compliance-input/tenant"] == "tenant-two"  # tenant one's pods are not its
    ignored = (K8S.parent.parent / ".gitignore").read_text()
    assert "conf/kubernetes/tenant/api-key" in ignored and "conf/kubernetes/overlays/*/api-key" in ignored


def test_the_readme_routes_only_stdout_to_the_siem():
    readme = (K8S.parent.parent / "README.md").read_text()
    assert "kubernetes_logs" in readme and '.stream == "stdout"' in readme
    assert "Name    kubernetes" in readme and "stream ^stdout$" in readme
    assert shlex.split("kubectl apply -k conf/kubernetes")  # the README's command names this folder
    assert "kubectl apply -k conf/kubernetes/tenant" in readme
