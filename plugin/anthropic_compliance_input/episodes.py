"""What an operator reads while `run --follow` heals: one ERROR line when a condition starts,
again every 10 minutes while it lasts, and one line when it clears. A restart storm of the same
line helps nobody; silence hides an outage."""

from __future__ import annotations

import time

from .errors import PluginError
from .logs import log

REPEAT_SECONDS = 600


class Episodes:
    def __init__(self) -> None:
        self.logged: tuple[str, float, tuple[str, str]] | None = None  # the reason last logged, when, what

    @property
    def ongoing(self) -> bool:
        """A failure is being retried: the API client then logs its retries at debug level."""
        return self.logged is not None

    def failed(self, exc: PluginError, delay: float, cap: float) -> None:
        now, episode = time.monotonic(), (exc.reason, exc.hint or exc.message)  # not the ids in a message
        if self.logged is not None and self.logged[0] != exc.reason:
            log.info("cleared: %s (now failing on %s)", self.logged[0], exc.reason,
                     extra={"fields": {"recovered": self.logged[0]}})
            self.logged = None
        if self.logged is None or self.logged[2] != episode or now - self.logged[1] >= REPEAT_SECONDS:
            when = f"every {cap:.0f}s" if delay >= cap else f"in {delay:.0f}s, then with a growing delay up to {cap:.0f}s"
            again = " (logged again every 10 minutes while it lasts)" if self.logged is None else ""
            log.error("%s; retrying %s%s", exc, when, again, extra={"fields": {"error": exc.reason}})
            self.logged = (exc.reason, now, episode)
        else:
            log.debug("still failing (%s); retrying in %.0fs", exc.reason, delay)

    def recovered(self) -> None:
        if self.logged is not None:
            log.info("recovered: %s no longer fails", self.logged[0], extra={"fields": {"recovered": self.logged[0]}})
        self.logged = None
