"""The one place the package reads the wall clock.

Functions that decide take ``now`` as an argument; only entry points call :func:`utcnow`.
Tests move time with freezegun, which patches ``datetime.now`` seen here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


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


class DatabaseClock:
    """The database's clock, read cheaply: the host's ``utcnow()`` shifted by the offset
    between the two, measured when made and again every ``refresh_s`` (one ``SELECT now()``).
    Daemons on one PostgreSQL use it, so leases, due times and deadlines all come from one
    clock: a host whose clock is off cannot take a lease early or poll before its time. The
    error is about half a round trip to the database."""

    def __init__(self, read: Callable[[], datetime | None], refresh_s: float = 30.0) -> None:
        self._read = read
        self.refresh_s = refresh_s
        self.offset = timedelta(0)
        self._measured = -math.inf
        self._lock = threading.Lock()
        self.measure()

    def measure(self) -> timedelta:
        before = utcnow()
        database = self._read()
        after = utcnow()
        with self._lock:
            if database is not None:
                self.offset = ensure_utc(database) - (before + (after - before) / 2)
            self._measured = time.monotonic()
            return self.offset

    def __call__(self) -> datetime:
        if time.monotonic() - self._measured >= self.refresh_s:
            try:
                self.measure()
            except Exception:  # the database is away: keep the last offset
                self._measured = time.monotonic()
        return utcnow() + self.offset
