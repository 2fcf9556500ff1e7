"""Signals: SIGTERM/SIGINT stop after the current line, SIGHUP re-reads the config in --follow,
and --max-runtime arms SIGALRM. While the plugin only waits (a request, a backoff, a sleep) the
stop is immediate: nothing is half-done then, and the cursor stays where the last page left it.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import Interrupted


class Stopper:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.reload = False
        self._waiting = 0

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def install(self, max_runtime: float | None = None) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        if max_runtime:
            signal.signal(signal.SIGALRM, self._on_stop)
            signal.setitimer(signal.ITIMER_REAL, max_runtime)

    def disarm(self) -> None:
        """Cancel --max-runtime: an alarm after the work is done would kill the exiting process."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)

    def _on_stop(self, signum: int, _frame: object) -> None:
        self.reason = "max-runtime" if signum == signal.SIGALRM else signal.Signals(signum).name
        if self._waiting:
            raise Interrupted(self.reason)

    def _on_hup(self, _signum: int, _frame: object) -> None:
        self.reload = True

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Mark a stretch where a stop may cut in at once."""
        if self.reason:
            raise Interrupted(self.reason)
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    def sleep(self, seconds: float) -> None:
        """Sleep, cut short by a stop (raises) or a reload request (returns)."""
        end = time.monotonic() + seconds
        with self.waiting():
            while not self.reload and (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.5))
