"""Client-side rate limits, one per provider account.

The upstream rejects (does not queue) submits beyond 20 per 10 s, so the submitter never sends
one that the window would refuse: a sliding window, thread-safe. Detail queries go through a
token bucket so a burst of due polls cannot exceed the configured rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.stores.base import Store


class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window_s`` seconds."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a slot and return 0, or return how many seconds until one frees up."""
        with self._lock:
            now = self._clock()
            while self._times and self._times[0] <= now - self.window_s:
                self._times.popleft()
            if len(self._times) < self.limit:
                self._times.append(now)
                return 0.0
            return self._times[0] + self.window_s - now

    def penalize(self, seconds: float) -> None:
        """The upstream said "slow down": fill the window so nothing goes out for a while."""
        with self._lock:
            until = self._clock() + seconds - self.window_s
            # keep the sends already in the window: the upstream still counts them, so a short
            # penalty must never free slots they hold for longer
            kept = [max(t, until) for t in list(self._times)[-self.limit :]]
            self._times = deque([until] * (self.limit - len(kept)) + kept)

    def available(self) -> int:
        with self._lock:
            now = self._clock()
            used = sum(1 for t in self._times if t > now - self.window_s)
            return max(0, self.limit - used)


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``burst``. ``rate <= 0`` means unlimited."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event, timeout_s: float = 30.0) -> bool:
        """Block until a token is available (False if ``stop`` is set or time runs out)."""
        if self.rate <= 0:
            return True
        deadline = self._clock() + timeout_s
        while not stop.is_set():
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self.rate
            if self._clock() + wait > deadline:
                return False
            stop.wait(wait)
        return False


class SharedWindow:
    """:class:`SlidingWindow` whose state is an account record in the store: every daemon on
    the database draws from the same window, so together they never exceed the account's
    limit (the record is read and written under ``Store.update_account``'s lock: PostgreSQL
    ``FOR UPDATE`` on its row, SQLite's write lock). Times come from the daemon's clock: the
    database's on PostgreSQL (orchestrator.clock.DatabaseClock), so hosts need not agree."""

    def __init__(
        self,
        store: Store,
        name: str,
        limit: int,
        window_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.record = f"ratelimit:{name}"
        self.limit = limit
        self.window_s = window_s
        self._clock = clock

    def _live(self, value: dict[str, Any] | None, now: float) -> list[float]:
        times = (value or {}).get("times", [])
        return sorted(float(t) for t in times if float(t) > now - self.window_s)

    def try_acquire(self) -> float:
        def take(value: dict[str, Any] | None, when: datetime) -> tuple[dict[str, Any], float]:
            now = when.timestamp()
            times = self._live(value, now)
            if len(times) < self.limit:
                return {"times": [*times, now]}, 0.0
            return {"times": times}, times[0] + self.window_s - now

        return self.store.update_account(self.record, take, self._clock)

    def penalize(self, seconds: float) -> None:
        def fill(value: dict[str, Any] | None, when: datetime) -> tuple[dict[str, Any], None]:
            now = when.timestamp()
            until = now + seconds - self.window_s
            kept = [max(t, until) for t in self._live(value, now)[-self.limit :]]
            return {"times": [until] * (self.limit - len(kept)) + kept}, None

        self.store.update_account(self.record, fill, self._clock)

    def available(self) -> int:
        now = self._clock().timestamp()
        return max(0, self.limit - len(self._live(self.store.account(self.record), now)))


class SharedTokenBucket:
    """:class:`TokenBucket` whose tokens come from an account record shared by every daemon
    on the database: ``rate`` per second for the whole account. Each daemon takes up to
    ``chunk`` tokens at a time (one locked update per chunk, not per poll), so N daemons
    together stay within the rate plus at most N chunks. ``rate <= 0`` means unlimited."""

    def __init__(
        self,
        store: Store,
        name: str,
        rate: float,
        clock: Callable[[], datetime],
        *,
        burst: float | None = None,
        chunk: int | None = None,
    ) -> None:
        self.store = store
        self.record = f"bucket:{name}"
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.chunk = chunk if chunk is not None else max(1, int(rate / 4))
        self._clock = clock
        self._local = 0
        self._lock = threading.Lock()

    def _take(self) -> tuple[int, float]:
        """Tokens taken from the shared bucket now, and (when none) seconds until one."""

        def take(
            value: dict[str, Any] | None, when: datetime
        ) -> tuple[dict[str, Any], tuple[int, float]]:
            now = when.timestamp()
            value = value or {}
            tokens = float(value.get("tokens", self.burst))
            last = float(value.get("at", now))
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
            n = min(self.chunk, int(tokens))
            tokens -= n
            wait = 0.0 if n else (1.0 - tokens) / self.rate
            return {"tokens": tokens, "at": now}, (n, wait)

        return self.store.update_account(self.record, take, self._clock)

    def acquire(self, stop: threading.Event, timeout_s: float = 30.0) -> bool:
        """Block until a token is available (False if ``stop`` is set or time runs out)."""
        if self.rate <= 0:
            return True
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            wait = 0.0
            with self._lock:
                if self._local <= 0:
                    got, wait = self._take()
                    self._local += got
                if self._local > 0:
                    self._local -= 1
                    return True
            if time.monotonic() + wait > deadline:
                return False
            stop.wait(min(wait, 1.0))
        return False
