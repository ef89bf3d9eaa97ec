"""A circuit breaker per upstream: stop hammering an upstream that is down.

What counts: only errors whose ``outage`` is set (transport errors, timeouts, 5xx and
maintenance answers; see :mod:`orchestrator.exceptions`). An upstream that answers
"task not found yet", a validation error or garbage is up, and such an answer counts as a
success. After ``threshold`` consecutive outages the circuit opens for ``cooldown_s``; then
it is half-open and admits exactly ONE request (the probe): its success closes the circuit,
its failure reopens it. Loops ask :meth:`CircuitBreaker.room` how many jobs to claim (one
while half-open) and :meth:`CircuitBreaker.allow` before each request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from orchestrator.clock import utcnow
from orchestrator.exceptions import UpstreamError
from orchestrator.logs import get_logger
from orchestrator.stores.base import Store

log = get_logger("orchestrator.breaker")


class BreakerState(StrEnum):
    CLOSED = "closed"  #: requests flow
    OPEN = "open"  #: cooling down: no request goes out
    HALF_OPEN = "half_open"  #: one probe may go out (or is out)


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

    def _probe_free(self, now: float) -> bool:
        # a probe whose caller never reported back (it found no work, or failed in a way that
        # is not the upstream's) must not keep the circuit open forever: after another
        # cooldown a new probe is let through
        return not self._probing or now - self._probe_at >= self.cooldown_s

    def state(self) -> BreakerState:
        with self._lock:
            if self._opened_at is None:
                return BreakerState.CLOSED
            if self._clock() - self._opened_at < self.cooldown_s:
                return BreakerState.OPEN
            return BreakerState.HALF_OPEN

    def room(self, wanted: int) -> int:
        """How many of ``wanted`` requests a loop may prepare now: all while closed, one
        while half-open with no probe out, none otherwise. Takes no permit."""
        with self._lock:
            if self._opened_at is None:
                return wanted
            now = self._clock()
            if now - self._opened_at < self.cooldown_s or not self._probe_free(now):
                return 0
            return min(wanted, 1)

    def allow(self) -> bool:
        """May this one request go out now? While half-open, True exactly once (the probe)."""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock()
            if now - self._opened_at < self.cooldown_s or not self._probe_free(now):
                return False
            self._probing = True
            self._probe_at = now
            return True

    @property
    def is_open(self) -> bool:
        """Not closed: open, or half-open waiting for its probe."""
        with self._lock:
            return self._opened_at is not None

    def record(self, error: UpstreamError | None) -> None:
        """Report a request's result: None (an answer) or the error it raised."""
        if error is not None and error.outage:
            self.failure()
        else:
            self.success()

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


class SharedBreaker(CircuitBreaker):
    """A :class:`CircuitBreaker` whose open state is shared through an account record: when one
    daemon sees the upstream down, every daemon on the database pauses, and once the cooldown
    has passed exactly one of them sends the probe (taken under ``Store.update_account``'s
    lock). Each daemon keeps counting its own outages; the record is read at most every
    ``refresh_s``. ``wall`` is the clock the record's times come from: the daemon passes its
    own (the database's on PostgreSQL), so hosts need not agree."""

    def __init__(
        self,
        name: str,
        store: Store,
        threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        refresh_s: float = 1.0,
    ) -> None:
        super().__init__(name, threshold, cooldown_s, clock)
        self.store = store
        self.shared_record = f"breaker:{name}"
        self._wall = wall
        self._refresh_s = refresh_s
        self._seen_at = -math.inf
        self._shared_open: float | None = None

    def _shared(self) -> float | None:
        """When the circuit was opened cluster-wide (wall seconds), or None: closed."""
        now = self._clock()
        if now - self._seen_at >= self._refresh_s:
            value = self.store.account(self.shared_record) or {}
            opened = value.get("opened_at")
            self._shared_open = float(opened) if isinstance(opened, int | float) else None
            self._seen_at = now
        return self._shared_open

    def _shared_blocks(self) -> bool:
        opened = self._shared()
        return opened is not None and self._wall() - opened < self.cooldown_s

    def state(self) -> BreakerState:
        local = super().state()
        if local is BreakerState.CLOSED and self._shared() is not None:
            return BreakerState.OPEN if self._shared_blocks() else BreakerState.HALF_OPEN
        return local

    @property
    def is_open(self) -> bool:
        return super().is_open or self._shared() is not None

    def room(self, wanted: int) -> int:
        if self._shared() is None:
            return super().room(wanted)
        return 0 if self._shared_blocks() else min(super().room(wanted), 1)

    def allow(self) -> bool:
        if self._shared() is None:
            return super().allow()
        if self._shared_blocks():
            return False

        def take_probe(value: dict[str, Any] | None, _: datetime) -> tuple[dict[str, Any], bool]:
            wall = self._wall()  # under the record's lock, like every shared time
            value = dict(value or {})
            probe = value.get("probe_at")
            if isinstance(probe, int | float) and wall - probe < self.cooldown_s:
                return value, False  # another daemon's probe is out
            value["probe_at"] = wall
            return value, True

        return self.store.update_account(self.shared_record, take_probe, utcnow)

    def success(self) -> None:
        was_open = self.is_open
        super().success()
        if was_open:
            self.store.set_account(self.shared_record, {"opened_at": None}, datetime.now(UTC))
            self._shared_open, self._seen_at = None, self._clock()

    def failure(self) -> None:
        super().failure()
        if super().is_open:
            opened = {"opened_at": self._wall(), "probe_at": None}
            self.store.set_account(self.shared_record, opened, datetime.now(UTC))
            self._shared_open, self._seen_at = float(opened["opened_at"] or 0), self._clock()
