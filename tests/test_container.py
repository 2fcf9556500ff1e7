"""The container image: built by `make image` from packaging/container/Containerfile on a Debian
root filesystem made with mmdebstrap (no registry here), then run as its non-root user: `demo`,
and a real `run` against the simulator with the key from a mounted file and the state in the
volume. Runs with buildah's chroot isolation: this machine's OCI runtime cannot start
containers (crun fails on its cgroup setup), buildah's chroot isolation needs none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from anthropic_compliance_input import __version__
from anthropic_compliance_input.simulator import FeedModel, SimServer
from helpers import IN_CI, KEY, toml_dumps

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("mmdebstrap", "buildah", "podman")
pytestmark = pytest.mark.skipif(
    not IN_CI and (os.geteuid() != 0 or not all(shutil.which(t) for t in TOOLS)),
    reason="needs root, mmdebstrap, buildah and podman (CI installs them)")
BASE = "localhost/anthropic-compliance-input-base:bookworm"
IMAGE = f"localhost/anthropic-compliance-input:{__version__}"


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("image")
    if subprocess.run(["podman", "image", "exists", BASE]).returncode != 0:
        sh("mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm",
           str(tmp / "base.tar"))
        sh("podman", "import", str(tmp / "base.tar"), BASE)
    sh("make", "image", "IMAGE_TOOL=buildah", f"BASE={BASE}",
       "IMAGE_FLAGS=--isolation chroot", cwd=ROOT, timeout=900)
    return IMAGE


def in_container(image: str, *args: str, mounts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The image's entrypoint with `args`, as its user, in a fresh working container."""
    inspect = json.loads(sh("buildah", "inspect", "--type", "image", image).stdout)
    config = inspect["OCIv1"]["config"]
    ctr = sh("buildah", "from", image).stdout.strip()
    try:
        # read-only binds as --mount …,ro=true, the writable one as -v: buildah 1.28's chroot
        # isolation otherwise turns every bind read-only once one is
        volumes = [a for m in mounts for a in (("--mount", m) if m.endswith("ro=true") else ("-v", m))]
        return subprocess.run(["buildah", "run", "--isolation", "chroot", "--user", config["User"], *volumes, ctr,
                               "--", *config["Entrypoint"], *args], capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def test_the_image_is_non_root_with_the_plugin_as_entrypoint_and_state_as_a_volume(image):
    config = json.loads(sh("buildah", "inspect", "--type", "image", image).stdout)["OCIv1"]["config"]
    assert config["Entrypoint"] == ["anthropic-compliance-input"] and config["User"] == "10001:10001"
    assert "/var/lib/anthropic-compliance-input" in config["Volumes"]
    assert "ANTHROPIC_COMPLIANCE_API_KEY_FILE=/run/secrets/anthropic-compliance-input/api-key" in config["Env"]


def test_demo_runs_in_the_container(image):
    result = in_container(image, "demo", "--count", "40", "--no-incident")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 40 and all(r["id"].startswith("activity_") for r in lines)


def test_a_real_run_in_the_container_against_the_simulator(image, tmp_path):
    now = time.time()
    model = FeedModel(keys={KEY: {"read:compliance_activities"}}, side_effects=False)
    records = model.generate(300, now - 3600, now - 120)
    secrets, etc, state = tmp_path / "secrets", tmp_path / "etc", tmp_path / "state"
    for d in (secrets, etc, state):
        d.mkdir()
    (secrets / "api-key").write_text(KEY + "\n")
    os.chown(secrets / "api-key", 10001, 10001)
    (secrets / "api-key").chmod(0o400)
    os.chown(state, 10001, 10001)
    with SimServer(model) as server:
        # the state at /srv/state: buildah run (chroot isolation) keeps its own anonymous volume on
        # the image's VOLUME path, over a bind mount there; a runtime binds the volume itself
        (etc / "config.toml").write_text(toml_dumps({"api": {"base_url": server.url},
                                                     "state": {"path": "/srv/state/t.db"}}))
        mounts = (f"type=bind,src={secrets},dst=/run/secrets/anthropic-compliance-input,ro=true",
                  f"type=bind,src={etc},dst=/etc/anthropic-compliance-input,ro=true",
                  f"{state}:/srv/state")
        result = in_container(image, "run", mounts=mounts)
        again = in_container(image, "run", mounts=mounts)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["id"] for line in result.stdout.splitlines()) == sorted(r["id"] for r in records)
    assert "emitted=300" in result.stderr and KEY not in result.stderr + result.stdout
    assert (state / "t.db").stat().st_uid == 10001  # the state is the container user's, on the host
    assert again.returncode == 0 and again.stdout == ""  # the cursor held across containers
