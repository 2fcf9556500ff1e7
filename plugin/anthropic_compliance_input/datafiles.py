"""The package's data files (data/*.json): the activity catalog, the simulator's value model,
and the ECS and OCSF mapping tables. One reader for all of them, at runtime and in the simulator."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(f"data/{name}").read_text("utf-8"))
