"""The circuit breaker: closed -> open -> half-open (one probe) -> closed or open again."""

from __future__ import annotations

import threading

from orchestrator.daemon.breaker import CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def opened(clock: FakeClock, threshold: int = 3, cooldown_s: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker("upstream", threshold, cooldown_s, clock)
    for _ in range(threshold):
        breaker.failure()
    assert breaker.is_open
    return breaker


def test_starts_closed() -> None:
    breaker = CircuitBreaker("upstream", 3, 30.0, FakeClock())
    assert not breaker.is_open
    assert all(breaker.allow() for _ in range(10))


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker("upstream", 3, 30.0, FakeClock())
    breaker.failure()
    breaker.failure()
    assert not breaker.is_open
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open
    assert not breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("upstream", 3, 30.0, FakeClock())
    for _ in range(5):
        breaker.failure()
        breaker.failure()
        breaker.success()
    assert not breaker.is_open
    assert breaker.allow()


def test_threshold_one_opens_at_once() -> None:
    breaker = CircuitBreaker("upstream", 1, 30.0, FakeClock())
    breaker.failure()
    assert breaker.is_open


def test_stays_shut_during_cooldown() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(29.9)
    assert not breaker.allow()
    assert not breaker.allow()


def test_one_probe_after_cooldown_and_no_second_concurrent_probe() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30.0)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # a second one while the probe is out
    clock.advance(5.0)
    assert not breaker.allow()
    assert breaker.is_open


def test_probe_success_closes() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open
    assert all(breaker.allow() for _ in range(5))
    # and the failure count starts from zero again
    breaker.failure()
    breaker.failure()
    assert not breaker.is_open


def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(31.0)
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open
    assert not breaker.allow()
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()  # the next probe
    assert not breaker.allow()


def test_failures_while_open_extend_the_cooldown() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(20.0)
    breaker.failure()  # an in-flight request that started before the circuit opened
    clock.advance(20.0)
    assert not breaker.allow()
    clock.advance(10.0)
    assert breaker.allow()


def test_a_probe_nobody_reports_does_not_hold_the_circuit_open_forever() -> None:
    """A caller took the probe but sent nothing (no work), so never reported back.

    The submitter and the poller share one breaker and both call ``allow()`` at the top of a
    tick; a tick with nothing to do reports neither success nor failure.
    """
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30.0)
    assert breaker.allow()  # taken, never reported
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()  # a fresh probe after another cooldown
    breaker.success()
    assert not breaker.is_open


def test_only_one_of_many_threads_gets_the_probe() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(30.0)
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        allowed = breaker.allow()
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
