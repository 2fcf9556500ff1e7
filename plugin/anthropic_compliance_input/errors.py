"""Exit codes (sysexits) and the one error type every expected failure is raised as.

Shippers ignore exit codes, but cron, systemd timers and operators do not: each failure class
maps to one documented code, and its message says what to do next.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    STALE = 1  # status --max-age: the feed is stale
    USAGE = 64
    DATAERR = 65  # corrupt state, a request the API calls invalid
    UNAVAILABLE = 69  # API unreachable or failing after retries
    IOERR = 74  # stdout closed under us (EPIPE)
    TEMPFAIL = 75  # rate limited past the retry budget, lock held, disk full
    NOPERM = 77  # 401/403 from the API
    CONFIG = 78  # bad config, no key, unwritable state path


class PluginError(Exception):
    """An expected failure: printed as one line on stderr, never as a traceback."""

    def __init__(self, code: Exit, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class Interrupted(BaseException):
    """Raised from the signal handler while the plugin waits (request, backoff, sleep).

    A BaseException so that library code catching ``Exception`` cannot swallow it.
    """
