"""A one-line backfill display, only when stderr is a terminal (no \\r in logs, ever)."""

from __future__ import annotations

import sys
import time

from .state import Counters
from .timeutil import format_rfc3339


class Progress:
    def __init__(self, started: float) -> None:
        self.started = started
        self.shown = False

    def __call__(self, counters: Counters, reached: float, target: float) -> None:
        rate = counters.emitted / max(time.time() - self.started, 1e-3)
        sys.stderr.write(f"\r{counters.emitted} activities, {counters.pages} pages, {rate:,.0f}/s, "
                         f"reached {format_rfc3339(reached)} of {format_rfc3339(target)}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")

    @staticmethod
    def on_a_terminal(started: float) -> "Progress | None":
        return Progress(started) if sys.stderr.isatty() else None
