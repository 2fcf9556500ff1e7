"""`demo` and `simulate`: the real pipeline against the simulated API, no key, no config.

`demo` needs no HOME and writes only inside its own temporary directory, so any user can run it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .api import Client
from .collect import Collector
from .config import ApiConfig, Config, OutputConfig, StateConfig
from .errors import Exit, Interrupted, PluginError
from .keyshape import SIMULATED_KEY
from .logs import log, register_secret, setup
from .simulator import FeedModel, SimServer
from .sinks import DeliveryError, StdoutSink
from .state import State, StateStore
from .stop import Stopper

DEFAULT_SEED = 7
DAY = 86400
DAY_ENDS = 18 * 3600  # the demo's day ends at 18:00 UTC: the latest one that has ended
INCIDENT_AT = 12 * 3600  # the story starts at noon UTC of that day


def demo(count: int, log_level: str, seed: int = DEFAULT_SEED, incident: bool = True, fmt: str = "raw") -> int:
    """`count` everyday activities of the 23 hours before the latest 18:00 UTC, with the
    incident of data/values.json woven in. Deterministic: a seed is one organization and one
    day, shifted to the latest whole day (the rhythm follows the UTC hour, which a whole-day
    shift keeps), so the default demo prints the same story every time, only its dates move."""
    setup("debug" if log_level == "debug" else "warning")
    register_secret(SIMULATED_KEY)
    now = time.time()
    end = (now - 120) // DAY * DAY + DAY_ENDS
    if end > now - 120:
        end -= DAY
    model = FeedModel(keys={SIMULATED_KEY: {"read:compliance_activities"}}, seed=seed)
    model.generate(max(count - 3, 0), end - 23 * 3600, end)
    model.generate(min(count, 3), end - 20 * 3600, end - 3600, kind="anthropic_access")
    if incident:
        model.extend(model.factory.incident(end - DAY_ENDS + INCIDENT_AT))
    with tempfile.TemporaryDirectory(prefix="anthropic-compliance-input-demo-") as tmp, SimServer(model) as server:
        cfg = Config(api=ApiConfig(base_url=server.url), state=StateConfig(path=str(Path(tmp) / "state.db")),
                     output=OutputConfig(format=fmt))
        store = StateStore(cfg.state.path)
        store.lock()
        state = State.starting_at(min(now - cfg.collect.initial_lookback.total_seconds(), end - DAY))
        store.commit(state)
        stopper = Stopper()
        stopper.install()
        client = Client(cfg.api, SIMULATED_KEY)
        try:
            Collector(cfg, client, store, state, StdoutSink(), stopper).poll()
        except Interrupted:
            pass
        except DeliveryError as exc:  # `demo | head`: the reader has what it wanted
            if exc.code != Exit.IOERR:
                raise
        finally:
            client.close()
            store.close()
    return 0


def simulate(port: int, count: int, rate: float) -> int:
    now = time.time()
    model = FeedModel(accept_any_key=True)
    model.generate(count, now - 24 * 3600, now - 60)
    stopper = Stopper()
    stopper.install()
    try:
        server = SimServer(model, port)
    except OSError as exc:
        raise PluginError(Exit.TEMPFAIL, f"simulate: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                          "choose another --port (0 picks a free one)") from None
    with server:
        log.info("simulated Compliance API at %s (Ctrl-C to stop); any well-formed key works:", server.url)
        log.info("  export ANTHROPIC_COMPLIANCE_API_KEY=%s", SIMULATED_KEY)
        log.info("  and in the config: [api] base_url = \"%s\"", server.url)
        try:
            while True:
                stopper.sleep(60.0 / rate if rate > 0 else 3600)
                model.add(model.factory.make(time.time()))
        except Interrupted:
            log.info("simulator stopped")
    return 0
