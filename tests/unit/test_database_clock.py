"""DatabaseClock: the host's clock shifted onto the database's, re-measured now and then."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.clock import DatabaseClock, utcnow


def test_it_follows_a_database_clock_that_is_ahead_and_keeps_it_when_the_database_is_away() -> None:
    skew = [timedelta(minutes=5)]
    fail = [False]

    def read():  # type: ignore[no-untyped-def]
        if fail[0]:
            raise ConnectionError("database away")
        return utcnow() + skew[0]

    clock = DatabaseClock(read, refresh_s=0.0)
    assert abs((clock() - utcnow()) - timedelta(minutes=5)) < timedelta(seconds=1)
    skew[0] = timedelta(seconds=-30)
    assert abs((clock() - utcnow()) + timedelta(seconds=30)) < timedelta(seconds=1)
    fail[0] = True
    assert abs((clock() - utcnow()) + timedelta(seconds=30)) < timedelta(seconds=1)


def test_without_a_database_clock_it_is_the_host_s() -> None:
    clock = DatabaseClock(lambda: None)
    assert abs(clock() - utcnow()) < timedelta(seconds=1)
