"""One collector per state: an flock on `<state>.lock`, held for the life of the process. The
kernel drops it when the process dies however it dies, so there are no stale locks to clean up."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import Exit, PluginError, disk_error


def private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)


def hold(lock_path: Path) -> int:
    """The locked descriptor; closing it releases the lock."""
    try:
        private_dir(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise disk_error(exc, f"cannot create the lock file {lock_path}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = ""
        try:
            holder = f" (pid {lock_path.read_text().strip()})"
        except OSError:
            pass
        raise PluginError(Exit.TEMPFAIL, f"another instance holds the state lock {lock_path}{holder}",
                          "only one collector may use a state file; this run exits without touching it",
                          "lock") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the pid is a courtesy for the operator; the flock is what counts
    return fd
