"""Health for monitoring that already exists: the Prometheus text format, replaced atomically
after every poll and every failure, for node_exporter's textfile collector.

The counters come from the state, so they survive restarts and equal what was printed; the
error gauge names the condition that holds now, so an alert can say what to fix.
"""

from __future__ import annotations

from typing import Any, Iterator

from .errors import REASONS
from .state import Counters, State

PREFIX = "anthropic_compliance_input_"


class Health:
    """What the metrics file says: the last state seen, this process's attempt and error."""

    def __init__(self) -> None:
        self.state: State | None = None
        self.last_attempt: float | None = None
        self.error: str | None = None  # the reason that holds now
        self.rate_limit_remaining: int | None = None
        self.unfolded = Counters()  # requests of a failed poll, not yet in the state's totals

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state, p = self.state, PREFIX
        totals = Counters()
        if state is not None:
            totals.add(state.totals)
        totals.add(self.unfolded)

        def gauge(name: str, doc: str, value: float | None) -> Iterator[Any]:
            if value is not None:
                yield GaugeMetricFamily(p + name, doc, value=value)

        yield from gauge("up", "1 while the last attempt succeeded", 0 if self.error else 1)
        yield from gauge("last_success_timestamp_seconds", "start of the last poll that completed (API clock)",
                         state.last_success if state else None)
        attempts = [t for t in (self.last_attempt, state.last_attempt if state else None) if t is not None]
        yield from gauge("last_attempt_timestamp_seconds", "start of the last attempt", max(attempts, default=None))
        yield from gauge("newest_activity_timestamp_seconds", "created_at of the newest activity delivered",
                         state.newest_activity if state else None)
        for name, doc, value in (("activities_emitted", "activities delivered", totals.emitted),
                                 ("activities_rejected", "activities written to the dead-letter file", totals.rejected),
                                 ("duplicates_skipped", "activities skipped as already delivered", totals.duplicates)):
            yield CounterMetricFamily(p + name, doc, value=value)
        requests = CounterMetricFamily(p + "requests", "API requests by outcome", labels=["outcome"])
        ok = max(0, totals.requests - totals.retries - totals.errors)
        for outcome, value in (("ok", ok), ("retry", totals.retries), ("error", totals.errors)):
            requests.add_metric([outcome], value)
        yield requests
        yield from gauge("rate_limit_remaining", "requests left in the API's rate-limit window",
                         self.rate_limit_remaining)
        yield from gauge("clock_skew_seconds", "host clock minus the API's clock",
                         state.clock_skew if state and state.clock_skew is not None else None)
        error = GaugeMetricFamily(p + "error", "1 while that condition holds", labels=["reason"])
        for reason in REASONS:
            error.add_metric([reason], 1 if reason == self.error else 0)
        yield error


def write(path: str, health: Health) -> str | None:
    """Replace the file; returns why it could not be written (the run goes on regardless).
    prometheus_client is imported here: a run without [metrics] textfile does not pay for it."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    registry = CollectorRegistry(auto_describe=False)
    registry.register(health)  # type: ignore[arg-type]  # a collector: anything with collect()
    try:
        write_to_textfile(path, registry)  # a temp file renamed over the old one
    except OSError as exc:
        return f"cannot write the metrics file {path}: {exc.strerror or exc}"
    return None
