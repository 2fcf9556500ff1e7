"""Signals: SIGTERM/SIGINT stop after the current line, SIGHUP re-reads the config in --follow,
and --max-runtime arms SIGALRM. While the plugin only waits (a request, a backoff, a sleep) the
stop is immediate: nothing is half-done then, and the cursor stays where the last page left it.
A write to a reader that stopped reading would block the stop for ever: after STALL_GRACE it
is abandoned (the page in flight is not committed) and the run ends with exit 75.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import Exit, Interrupted, PluginError

STALL_GRACE = 1.0  # seconds a stop waits for a blocked write to stdout


class ReaderStalled(PluginError):
    def __init__(self, reason: str) -> None:
        super().__init__(Exit.TEMPFAIL, f"stopped ({reason}) while the reader was not reading stdout: the write "
                         f"blocked for {STALL_GRACE:.0f} s", "the page in flight was not committed and is "
                         "repeated next run; check that the shipper reads this command's output", "stdout")


class Stopper:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.reload = False
        self._waiting = 0
        self._writing = 0
        self._stall_armed = False

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
        if signum == signal.SIGALRM and self._stall_armed and self.reason:
            if self._writing:
                raise ReaderStalled(self.reason)
            return
        self.reason = self.reason or ("max-runtime" if signum == signal.SIGALRM else signal.Signals(signum).name)
        if self._waiting:
            raise Interrupted(self.reason)
        if self._writing:
            self._arm_stall()

    def _arm_stall(self) -> None:
        if not self._stall_armed:
            self._stall_armed = True
            signal.signal(signal.SIGALRM, self._on_stop)
            signal.setitimer(signal.ITIMER_REAL, STALL_GRACE)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Mark a write to the reader: once a stop is requested, it may block STALL_GRACE more."""
        self._writing += 1
        try:
            if self.reason:
                self._arm_stall()
            yield
        finally:
            self._writing -= 1

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
