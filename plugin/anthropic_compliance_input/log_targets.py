"""The log targets besides stderr: the local syslog socket and a file. Their own module so that
logging.handlers is imported only by a run that uses one."""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat
from typing import Any

from .logs import IDENT, SYSLOG_SOCKET, SYSLOG_SOCKET_ENV, _OneLineErrors

SYSLOG_SEND_TIMEOUT = 1.0  # a syslog daemon that stops reading must not stop the collector


class _Syslog(_OneLineErrors, logging.handlers.SysLogHandler):
    def _connect_unixsocket(self, address: Any) -> None:
        super()._connect_unixsocket(address)
        # a full datagram queue blocks send() for ever, and a stop signal cannot cut it short
        self.socket.settimeout(SYSLOG_SEND_TIMEOUT)


class _File(_OneLineErrors, logging.handlers.WatchedFileHandler):
    """Appended, mode 0640; reopened when logrotate moves the file (and on reopen())."""

    def _open(self) -> Any:
        # O_NONBLOCK for the open only: a FIFO without a reader fails (ENXIO) instead of hanging
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o640)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream:
                self.stream.close()
            self.stream = self._open()
            self._statstream()
        finally:
            self.release()



def open_target(target: str) -> logging.Handler:
    """A handler for "syslog" or "file:PATH"; ValueError with a one-line reason if unusable."""
    if target == "syslog":
        address = os.environ.get(SYSLOG_SOCKET_ENV) or SYSLOG_SOCKET
        try:
            if not stat.S_ISSOCK(os.stat(address).st_mode):  # SysLogHandler would not say
                raise OSError(0, "not a socket")
            handler = _Syslog(address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            if handler.socket is None or handler.socket.fileno() < 0:  # it swallows a failed connect
                handler.close()
                raise OSError(0, "nothing listens there")
        except OSError as exc:
            raise ValueError(f"no syslog socket at {address}: {exc.strerror or exc}") from None
        handler.ident = f"{IDENT}[{os.getpid()}]: "
        return handler
    path = os.path.expanduser(target[5:].strip())
    try:
        return _File(path, delay=False)
    except OSError as exc:
        raise ValueError(f"cannot open the log file {path}: {exc.strerror or exc}") from None
