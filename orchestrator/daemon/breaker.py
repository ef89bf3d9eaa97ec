"""A circuit breaker per upstream: stop hammering an upstream that is down.

After ``threshold`` consecutive transient failures the circuit opens for ``cooldown_s``; then
one probe is let through (half-open); a success closes it, a failure reopens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from orchestrator.logs import get_logger

log = get_logger("orchestrator.breaker")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._probe_at = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """May a request go out now?"""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock()
            if now - self._opened_at < self.cooldown_s:
                return False
            # a probe whose caller never reported back (it found no work, or failed in a way
            # that is not the upstream's) must not keep the circuit open forever: after another
            # cooldown a new probe is let through
            if self._probing and now - self._probe_at < self.cooldown_s:
                return False
            self._probing = True
            self._probe_at = now
            return True

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened_at is not None

    def success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("circuit_closed", upstream=self.name)
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._failures >= self.threshold:
                if self._opened_at is None:
                    log.warning("circuit_opened", upstream=self.name, failures=self._failures)
                self._opened_at = self._clock()
