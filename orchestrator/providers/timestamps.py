"""Upstream timestamps and ``Retry-After`` values, parsed leniently.

The upstream writes times as ``"YYYY-MM-DD HH:MM:SS"`` (UTC, no zone), as epoch milliseconds
(a number or a numeric string) or as ISO 8601, depending on endpoint and day. A timestamp is
metadata: anything that does not parse becomes None, never an error.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from orchestrator.clock import ensure_utc, isoformat

#: epoch values below this are taken as seconds, above as milliseconds (1e11 ms = 1973-03-03,
#: 1e11 s = year 5138): the documented unit is milliseconds, seconds are tolerated
_SECONDS_BELOW = 1e11
_NUMERIC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_MAX_TEXT = 64


def parse_timestamp(value: object) -> datetime | None:
    """``value`` as an aware UTC datetime, or None if it is not a recognisable timestamp."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        return None
    if _NUMERIC.fullmatch(text):
        try:
            return _from_epoch(float(text))
        except ValueError:  # pragma: no cover - the regex admits only floats
            return None
    try:
        # Python 3.11 reads "YYYY-MM-DD HH:MM:SS", "...THH:MM:SS", fractions, "Z" and offsets
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ensure_utc(parsed)


def timestamp_iso(value: object) -> str | None:
    """``value`` as an ISO 8601 UTC string (``...Z``), or None."""
    return isoformat(parse_timestamp(value))


def _from_epoch(number: float) -> datetime | None:
    try:
        number = float(number)
    except OverflowError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    seconds = number if number < _SECONDS_BELOW else number / 1000.0
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header (delay seconds or an HTTP date) as seconds from ``now``.

    None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        return None
    if _NUMERIC.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, (ensure_utc(when) - ensure_utc(now)).total_seconds())
