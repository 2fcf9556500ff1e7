"""Fixtures: the simulated API on loopback and a Plugin configured for it. Helpers that tests
import live in helpers.py."""

from __future__ import annotations

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
