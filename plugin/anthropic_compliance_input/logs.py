"""stderr logging: one line per event, text or JSON, with every known secret redacted.

Redaction sits in the handler, so it covers messages, arguments and formatted tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import sys
import time

log = logging.getLogger("anthropic_compliance_input")
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    if value and len(value) >= 8:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = redact(message)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        if self.fmt == "json":
            doc = {"time": stamp, "level": record.levelname.lower(), "message": message}
            doc.update(getattr(record, "fields", {}))
            return json.dumps(doc, separators=(",", ":"), default=str)
        return f"{stamp} {record.levelname} {message}".replace("\r", "")


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    # urllib3 repeats every retry the client already logs; keep its detail for debug only,
    # through the same redacting handler.
    ulog = logging.getLogger("urllib3")
    ulog.handlers[:] = [handler]
    ulog.setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.ERROR)
    ulog.propagate = False
