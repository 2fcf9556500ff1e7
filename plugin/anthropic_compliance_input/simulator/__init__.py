"""A model of the Compliance API Activity Feed, shared by `demo`, `simulate`, the tests and the
benchmark, so they all meet one API: newest-first by default with `order=asc`, id tie-break,
opaque-looking cursors, filters, limit bounds, 400/401/403/429/5xx bodies and headers, a shared
600/min budget, late-indexed activities, and the `compliance_api_accessed` record every request
leaves behind. Activities are drawn from the real activity types (data/activity_types.json).

- `factory`: realistic activities;
- `feed`: the API's behaviour without HTTP (`FeedModel`), on its own, possibly skewed, clock;
- `server`: the model on loopback HTTP (`SimServer`), with injected network faults.

The names are loaded on first use: the CLI reads `SIMULATED_KEY` while building its help, and
must not pay for the HTTP server's imports on every run.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The one key to show users of `demo` and `simulate`: well-formed, so it passes the plugin's
# shape checks, and self-evidently not a real credential.
from ..keyshape import SIMULATED_KEY  # noqa: E402  (the one home of key shapes)

_HOMES = {
    "ActivityFactory": "factory", "activity_types": "factory",
    "FeedModel": "feed", "Response": "feed", "ACTIVITIES_PATH": "feed",
    "SimServer": "server", "FaultPolicy": "server", "FAULTS": "server",
}
__all__ = ["ACTIVITIES_PATH", "FAULTS", "SIMULATED_KEY", "ActivityFactory", "FaultPolicy", "FeedModel",
           "Response", "SimServer", "activity_types"]

if TYPE_CHECKING:
    from .factory import ActivityFactory, activity_types
    from .feed import ACTIVITIES_PATH, FeedModel, Response
    from .server import FAULTS, FaultPolicy, SimServer


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
