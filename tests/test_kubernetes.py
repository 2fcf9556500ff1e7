"""The Kubernetes manifests for one tenant (conf/kubernetes): valid for a current Kubernetes in
strict mode, hardened, one replica that cannot run twice, a readiness probe on the health signal,
and a Kustomize overlay for tenant two whose names and references line up with the base."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anthropic_compliance_input.cli import build_parser
from anthropic_compliance_input.config import load_config

K8S = Path(__file__).resolve().parent.parent / "conf" / "kubernetes"
KUBERNETES = "1.37.0"  # the newest kubernetes-validate knows; see pyproject's test extras
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    return spec["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" else spec["template"]["spec"]


def test_every_manifest_is_valid_for_a_current_kubernetes_in_strict_mode():
    assert {p.name for p in MANIFESTS} >= {"deployment.yaml", "pvc.yaml", "cronjob.yaml"}
    result = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", KUBERNETES,
                             *map(str, MANIFESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(MANIFESTS), result.stdout


@pytest.mark.parametrize("name", ["deployment.yaml", "cronjob.yaml"])
def test_the_pod_is_hardened_and_reads_its_key_from_a_secret_file(name):
    doc = load(K8S / name)
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
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == load(K8S / "pvc.yaml")["metadata"]["name"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    build_parser().parse_args(container["args"])  # the plugin's own parser takes them


def test_one_replica_recreated_ready_on_the_health_signal_and_a_cronjob_that_never_overlaps():
    deployment = load(K8S / "deployment.yaml")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"] == ["run", "--follow"]
    probe = container["readinessProbe"]["exec"]["command"]
    assert probe[:3] == ["anthropic-compliance-input", "status", "--max-age"]
    build_parser().parse_args(probe[1:])
    cron = load(K8S / "cronjob.yaml")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (job,) = pod_spec(cron)["containers"]
    assert job["args"][0] == "run" and "--follow" not in job["args"]


def test_the_tenant_configs_load_with_the_plugins_strict_model():
    for path in K8S.rglob("config.toml"):
        loaded = load_config(str(path))
        assert loaded.config.state.path.startswith("/var/lib/anthropic-compliance-input/"), path


def test_the_overlay_for_tenant_two_lines_up_with_the_base():
    base = load(K8S / "kustomization.yaml")
    overlay_dir = K8S / "overlays" / "tenant-two"
    overlay = load(overlay_dir / "kustomization.yaml")
    for kustomization, folder in ((base, K8S), (overlay, overlay_dir)):
        assert kustomization["kind"] == "Kustomization"
        for resource in kustomization.get("resources", []):
            assert (folder / resource).exists(), resource
        for generator in kustomization.get("configMapGenerator", []):
            assert all((folder / f).exists() for f in generator["files"])
    # the overlay replaces the base's generated objects by name, so kustomize renames every
    # reference (ConfigMap, Secret, PVC) to tenant two's
    base_names = {g["name"] for g in base["configMapGenerator"] + base["secretGenerator"]}
    for generator in overlay["configMapGenerator"] + overlay["secretGenerator"]:
        assert generator["name"] in base_names and generator["behavior"] == "replace"
    assert overlay["nameSuffix"] == "-tenant-two" and overlay["resources"] == ["../.."]
    assert [g["files"] for g in base["secretGenerator"]] == [["api-key"]]  # the key never in the repo
    ignored = (K8S.parent.parent / ".gitignore").read_text()
    assert "conf/kubernetes/api-key" in ignored and "conf/kubernetes/overlays/*/api-key" in ignored


def test_the_readme_routes_only_stdout_to_the_siem():
    readme = (K8S.parent.parent / "README.md").read_text()
    assert "kubernetes_logs" in readme and '.stream == "stdout"' in readme
    assert "Name    kubernetes" in readme and "stream ^stdout$" in readme
    assert shlex.split("kubectl apply -k conf/kubernetes")  # the README's command names this folder
    assert "kubectl apply -k conf/kubernetes" in readme
