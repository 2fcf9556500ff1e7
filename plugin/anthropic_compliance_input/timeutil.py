"""RFC 3339 timestamps and human durations ("90s", "24h", "7d", "1h30m")."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_rfc3339(text: str) -> datetime:
    """Parse a strict RFC 3339 timestamp (time zone required) to an aware UTC datetime."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    body = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    body = body[:10] + "T" + body[11:]
    # Python 3.10's fromisoformat wants exactly 3 or 6 fractional digits: use 6 (nanoseconds cut).
    body = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), body, count=1)
    return datetime.fromisoformat(body).astimezone(UTC)


def epoch(text: str) -> float:
    return parse_rfc3339(text).timestamp()


def fast_epoch(text: str) -> float:
    """epoch() for a value the schema already checked: fromisoformat alone (3.11+), no regex."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            return moment.timestamp()
    except ValueError:
        pass
    return epoch(text)


def format_rfc3339(moment: datetime | float) -> str:
    """Format as UTC with 'Z'; microseconds only when present, as the API writes them."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str | int | float) -> timedelta:
    """'90s', '15m', '24h', '7d', '2w', '1h30m', or a bare number of seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return timedelta(seconds=float(value))
    if not value or _DURATION_PART.sub("", value):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 24h, 7d, 1h30m)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A start point: a duration ago ('7d'), a date ('2026-01-01', UTC midnight) or a timestamp."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", value):
        return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC)
    try:
        return parse_rfc3339(value)
    except ValueError:
        pass
    try:
        return now - parse_duration(value)
    except ValueError:
        raise ValueError(
            f"not a date, time or duration: {text!r} "
            "(use e.g. 2026-01-01, 2026-01-01T12:00:00Z, 7d or 24h)"
        ) from None
