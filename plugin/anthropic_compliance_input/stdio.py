"""The standard descriptors, made safe before anything else is opened."""

from __future__ import annotations

import os
import sys

from .errors import Exit


def guard_std_fds() -> bool:
    """Fill closed descriptors 0-2 with /dev/null before anything else is opened: otherwise the
    next file opened (the lock, the state) would become fd 1 and receive the activity lines.
    Returns whether stdout was closed, which `run` then refuses (exit 74)."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:  # Python leaves sys.std* None for a descriptor closed at start
            setattr(sys, name, open(fd, mode, buffering=1 if mode == "w" else -1, closefd=False))
    return 1 in closed


def stdout_failed(exc: OSError) -> int:
    """Report once on stderr, and point fd 1 at /dev/null so the interpreter's own flush at
    exit cannot fail again (it would turn the exit code into 120)."""
    from .logs import log

    log.error("cannot write to stdout: %s — run the command with stdout open for writing", exc.strerror or exc)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return Exit.IOERR


def stdout_broken() -> bool:
    """Whether a write to stdout fails now: an OSError of those kinds came from print()."""
    try:
        sys.stdout.flush()
        os.write(1, b"")
        return False
    except OSError:
        return True
