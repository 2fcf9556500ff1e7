"""Fixtures: the simulated API on loopback and a Plugin configured for it. Helpers that tests
import live in helpers.py."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from helpers import KEY, Plugin

from anthropic_compliance_input.simulator import FeedModel, SimServer


@pytest.fixture
def model() -> FeedModel:
    return FeedModel(keys={KEY: {"read:compliance_activities"}}, side_effects=False)


@pytest.fixture
def sim(model: FeedModel):
    with SimServer(model) as server:
        yield server


@pytest.fixture
def plugin(tmp_path: Path, sim: SimServer) -> Plugin:
    return Plugin(tmp_path, sim.url)


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 256 KB filesystem, to fill up (tests using it are marked needs_root)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)
