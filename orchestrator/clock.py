"""The one place the package reads the wall clock.

Functions that decide take ``now`` as an argument; only entry points call :func:`utcnow`.
Tests move time with freezegun, which patches ``datetime.now`` seen here.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; naive values (as SQLite returns them) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix, or None."""
    if value is None:
        return None
    return ensure_utc(value).isoformat().replace("+00:00", "Z")
