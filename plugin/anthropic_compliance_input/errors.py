"""Exit codes (sysexits) and the one error type every expected failure is raised as.

Shippers ignore exit codes, but cron, systemd timers and operators do not: each failure class
maps to one documented code, and its message says what to do next. The help text is generated
from this enum, so the code and the documentation cannot drift apart.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    STALE = 1
    USAGE = 64
    DATAERR = 65
    UNAVAILABLE = 69
    SOFTWARE = 70
    IOERR = 74
    TEMPFAIL = 75
    NOPERM = 77
    CONFIG = 78

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING = {
    Exit.OK: "ok",
    Exit.STALE: "stale (status --max-age)",
    Exit.USAGE: "usage",
    Exit.DATAERR: "bad data (corrupt state, a filter the API refuses)",
    Exit.UNAVAILABLE: "API unavailable after retries",
    Exit.SOFTWARE: "internal error (a bug: please report it)",
    Exit.IOERR: "stdout closed or not writable",
    Exit.TEMPFAIL: "temporary (rate limit, lock held, disk full)",
    Exit.NOPERM: "auth (401/403)",
    Exit.CONFIG: "configuration (bad config, no key, unwritable state path)",
}


def exit_codes_help() -> str:
    """The 'exit codes:' paragraph of --help and the man page."""
    return "exit codes: " + ", ".join(f"{code.value} {code.meaning}" for code in Exit)


def _clean(text: str) -> str:
    """Known secrets redacted, and valid Unicode (a lone surrogate from a JSON body would break
    the log line and the state it is recorded in)."""
    from .logs import redact

    return redact(text).encode("utf-8", "backslashreplace").decode("utf-8")


# The `error{reason=...}` metric and `status`'s `error`: what an alert routes on. An exit code
# alone cannot say it (75 is a lock, a full disk or a rate limit).
REASONS = ("auth", "config", "network", "rate_limited", "lock", "disk", "data", "stdout")
_REASON = {Exit.NOPERM: "auth", Exit.CONFIG: "config", Exit.USAGE: "config", Exit.UNAVAILABLE: "network",
           Exit.TEMPFAIL: "network", Exit.DATAERR: "data", Exit.SOFTWARE: "data", Exit.IOERR: "stdout"}


class PluginError(Exception):
    """An expected failure: printed as one line on stderr, never as a traceback."""

    def __init__(self, code: Exit, message: str, hint: str | None = None, reason: str | None = None) -> None:
        message = _clean(message)  # API bodies end up here: a proxy may echo the key back
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.reason = reason or _REASON.get(code, "data")

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def disk_error(exc: OSError, what: str) -> PluginError:
    """A full disk heals by itself or by a cleanup (75, retried); anything else needs the operator (78)."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return PluginError(Exit.TEMPFAIL, f"{what}: {reason}",
                           "free disk space; the previous state is intact and nothing was lost", "disk")
    return PluginError(Exit.CONFIG, f"{what}: {reason}",
                       "make [state] path writable by the user the shipper runs as; "
                       "the previous state is intact", "disk")


class Interrupted(BaseException):
    """Raised from the signal handler while the plugin waits (request, backoff, sleep).

    A BaseException so that library code catching ``Exception`` cannot swallow it.
    """
