"""RFC 3339 timestamps and human durations ("90s", "24h", "7d", "1h30m")."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

UTC = timezone.utc
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 100 * 366 * 86400.0
SKEW_TOLERANCE = 5.0  # seconds of host-vs-API clock skew worth telling: Date has whole seconds
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # before any Claude activity; catches year typos


def parse_rfc3339(text: str) -> datetime:
    """Parse a strict RFC 3339 timestamp (time zone required) to an aware UTC datetime."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    body = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    body = body[:10] + "T" + body[11:]
    # Python 3.10's fromisoformat wants exactly 3 or 6 fractional digits: use 6 (nanoseconds cut).
    body = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), body, count=1)
    try:
        return datetime.fromisoformat(body).astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past datetime's range in UTC
        raise ValueError(f"timestamp out of range: {text!r}") from None


_EPOCH, _SECOND = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(seconds=1)


def epoch_ns(text: str) -> tuple[int, int]:
    """Whole seconds and nanoseconds, exact for all 9 fraction digits (a float keeps only
    microseconds): the forward output's EventTime must equal created_at."""
    if text[-1:] == "Z" and len(text) <= 27 and text.isascii():  # the API's form: 6 digits at most
        try:
            moment = datetime.fromisoformat(text)  # C, Python 3.11+ (3.10 refuses "Z": the slow path)
            if moment.tzinfo is not None:
                return (moment - _EPOCH) // _SECOND, moment.microsecond * 1000  # exact, no float
        except ValueError:
            pass
    moment = parse_rfc3339(text)
    fraction = re.match(r"\.(\d+)", text[19:])
    nanos = int(fraction.group(1)[:9].ljust(9, "0")) if fraction else 0
    return (moment - _EPOCH) // _SECOND, nanos


def epoch(text: str) -> float:
    try:
        return parse_rfc3339(text).timestamp()
    except OverflowError:
        raise ValueError(f"timestamp out of range: {text!r}") from None


def fast_epoch(text: str) -> float:
    """epoch() for a value the schema already checked: fromisoformat alone (3.11+), no regex."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            return moment.timestamp()
    except (ValueError, OverflowError):
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
    """'90s', '15m', '24h', '7d', '2w', '1h30m', or a bare number of seconds (at most 100 years:
    anything longer is a typo, and timedelta would overflow with a traceback)."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError("expected a duration such as 90s, 15m, 24h or 7d")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        value = text.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value)
        elif not value or _DURATION_PART.sub("", value):
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 24h, 7d, 1h30m)")
        else:
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a finite, non-negative duration: {text!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than 100 years")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A start point between 2000-01-01 and tomorrow: a duration ago ('7d'), a date ('2026-01-01',
    UTC midnight) or a timestamp. The bounds catch typos (0999, 2099) that would otherwise start
    collection in a place no audit trail can be."""
    now = now or datetime.now(UTC)
    moment = _parse_since(text, now)
    if not EARLIEST <= moment <= now + timedelta(days=1):
        raise ValueError(f"{text!r} is {format_rfc3339(moment) if moment.year >= 1000 else moment.isoformat()}: "
                         f"must lie between {EARLIEST.date()} and tomorrow")
    return moment


def _parse_since(text: str, now: datetime) -> datetime:
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
        span = parse_duration(value)
    except ValueError as exc:
        if "not a duration" not in str(exc):
            raise
        raise ValueError(f"not a date, time or duration: {text!r} "
                         "(use e.g. 2026-01-01, 2026-01-01T12:00:00Z, 7d or 24h)") from None
    try:
        return now - span
    except OverflowError:
        raise ValueError(f"{text!r} reaches before the year 1") from None


def human_duration(seconds: float) -> str:
    """The largest whole unit, as the config takes it: 604800 -> '7d', 5400 -> '90m'; a day is
    '24h', as the defaults say it."""
    whole = int(seconds)
    if whole == 86400:
        return "24h"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def spoken_duration(seconds: float) -> str:
    """human_duration in words, for sentences: '24 hours', '7 days', '90 minutes', '1 second'."""
    short = human_duration(seconds)
    count, unit = int(short[:-1]), {"d": "day", "h": "hour", "m": "minute", "s": "second"}[short[-1]]
    return f"{count} {unit}{'' if count == 1 else 's'}"


def skew_text(skew: float) -> str:
    """'3600s ahead of the API's': how check, status and the log say a clock skew."""
    return f"{abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} the API's"


def since_arg(text: str) -> float:
    """`--since` as epoch seconds, or a usage error (64) that says why."""
    from .errors import Exit, PluginError

    try:
        return parse_since(text).timestamp()
    except ValueError as exc:
        raise PluginError(Exit.USAGE, f"--since: {exc}") from None
