"""Client-side rate limits with an injected clock: nothing here sleeps for real.

TokenBucket.acquire waits on its stop event; the tests hand it an event whose ``wait`` moves
the fake clock instead of sleeping, or a pre-set event, or a real clock with a tiny wait.
"""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.daemon.ratelimit import SlidingWindow, TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ClockEvent(threading.Event):
    """A stop event whose ``wait`` advances the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.clock.advance(timeout)
        return self.is_set()


# --- SlidingWindow ----------------------------------------------------------------------------


def test_window_allows_limit_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 10.0, clock)
    assert window.available() == 3
    assert [window.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.available() == 0
    assert window.try_acquire() == pytest.approx(10.0)
    clock.advance(4.0)
    assert window.try_acquire() == pytest.approx(6.0)


def test_window_slides_one_slot_at_a_time() -> None:
    clock = FakeClock()
    window = SlidingWindow(2, 10.0, clock)
    assert window.try_acquire() == 0.0  # t=0
    clock.advance(3.0)
    assert window.try_acquire() == 0.0  # t=3
    clock.advance(6.9)
    assert window.try_acquire() == pytest.approx(0.1)  # first frees at t=10
    assert window.available() == 0
    clock.advance(0.1)
    assert window.available() == 1
    assert window.try_acquire() == 0.0  # t=10: the first send left the window
    assert window.try_acquire() == pytest.approx(3.0)  # the second frees at t=13
    clock.advance(3.0)
    assert window.available() == 1


def test_refused_attempts_take_no_slot() -> None:
    clock = FakeClock()
    window = SlidingWindow(1, 10.0, clock)
    assert window.try_acquire() == 0.0
    for _ in range(5):
        assert window.try_acquire() > 0
    clock.advance(10.0)
    assert window.try_acquire() == 0.0
    assert window.try_acquire() == pytest.approx(10.0)


def test_never_more_than_limit_in_any_window() -> None:
    """Try every 0.25 s for 60 s: every 10 s span holds at most 20 acquisitions."""
    clock = FakeClock(0.0)
    window = SlidingWindow(20, 10.0, clock)
    taken: list[float] = []
    for _ in range(240):
        if window.try_acquire() == 0.0:
            taken.append(clock.now)
        clock.advance(0.25)
    assert len(taken) == 120  # exactly the rate, over six windows
    for start in taken:
        assert sum(1 for t in taken if start <= t < start + 10.0) <= 20


def test_penalize_blocks_for_the_given_time_then_frees_all() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 10.0, clock)
    window.penalize(25.0)
    assert window.available() == 0
    assert window.try_acquire() == pytest.approx(25.0)
    clock.advance(24.0)
    assert window.try_acquire() == pytest.approx(1.0)
    assert window.available() == 0
    clock.advance(1.0)
    assert window.available() == 3
    assert [window.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


def test_short_penalty_does_not_forget_sends_still_in_the_window() -> None:
    """A Retry-After of 1 s after 3 sends must not let 3 more out before the window ends."""
    clock = FakeClock()
    window = SlidingWindow(3, 10.0, clock)
    for _ in range(3):
        assert window.try_acquire() == 0.0
    window.penalize(1.0)
    clock.advance(1.0)
    assert window.available() == 0
    assert window.try_acquire() == pytest.approx(9.0)
    clock.advance(9.0)
    assert window.available() == 3


def test_penalty_counts_partly_used_window() -> None:
    clock = FakeClock()
    window = SlidingWindow(3, 10.0, clock)
    assert window.try_acquire() == 0.0  # t=0: one send
    clock.advance(2.0)
    window.penalize(3.0)  # t=2: nothing before t=5
    assert window.try_acquire() == pytest.approx(3.0)
    clock.advance(3.0)  # t=5: the two penalty slots free up, the real send holds until t=10
    assert window.available() == 2
    assert window.try_acquire() == 0.0
    assert window.try_acquire() == 0.0
    assert window.try_acquire() == pytest.approx(5.0)


def test_window_is_thread_safe() -> None:
    clock = FakeClock()
    window = SlidingWindow(50, 10.0, clock)
    got: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            result = window.try_acquire()
            with lock:
                got.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got.count(0.0) == 50
    assert len(got) == 200


# --- TokenBucket ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_bucket_rate_zero_or_less_is_unlimited(rate: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock)
    stop = ClockEvent(clock)
    assert all(bucket.acquire(stop) for _ in range(1000))
    assert stop.waits == []


def test_bucket_burst_then_waits_for_refill() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock)
    stop = ClockEvent(clock)
    assert [bucket.acquire(stop) for _ in range(3)] == [True, True, True]
    assert stop.waits == []
    start = clock.now
    assert bucket.acquire(stop)
    assert stop.waits == [pytest.approx(0.5)]
    assert clock.now - start == pytest.approx(0.5)


def test_bucket_default_burst_is_the_rate() -> None:
    clock = FakeClock()
    stop = ClockEvent(clock)
    bucket = TokenBucket(5.0, clock=clock)
    assert bucket.burst == 5.0
    assert all(bucket.acquire(stop) for _ in range(5))
    assert stop.waits == []
    assert TokenBucket(0.5, clock=clock).burst == 1.0


def test_bucket_sustained_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=1, clock=clock)
    stop = ClockEvent(clock)
    start = clock.now
    for _ in range(101):
        assert bucket.acquire(stop)
    assert clock.now - start == pytest.approx(10.0)


def test_bucket_refills_with_time_but_not_beyond_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=2, clock=clock)
    stop = ClockEvent(clock)
    assert bucket.acquire(stop)
    assert bucket.acquire(stop)
    clock.advance(100.0)  # would be 100 tokens without the cap
    assert bucket.acquire(stop)
    assert bucket.acquire(stop)
    assert stop.waits == []
    assert bucket.acquire(stop)
    assert stop.waits == [pytest.approx(1.0)]


def test_bucket_gives_up_when_the_wait_exceeds_the_timeout() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.1, burst=1, clock=clock)
    stop = ClockEvent(clock)
    assert bucket.acquire(stop)
    assert bucket.acquire(stop, timeout_s=5.0) is False  # the next token is 10 s away
    assert stop.waits == []
    assert bucket.acquire(stop, timeout_s=30.0) is True
    assert stop.waits == [pytest.approx(10.0)]


def test_bucket_returns_false_when_stopped() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=1, clock=clock)
    stop = ClockEvent(clock)
    stop.set()
    assert bucket.acquire(stop) is False
    assert stop.waits == []


def test_bucket_stop_during_wait_returns_false() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=1, clock=clock)

    class StopsWhileWaiting(ClockEvent):
        def wait(self, timeout: float | None = None) -> bool:
            self.set()
            return super().wait(timeout)

    stop = StopsWhileWaiting(clock)
    assert bucket.acquire(stop)
    assert bucket.acquire(stop) is False
    assert len(stop.waits) == 1


def test_bucket_with_the_real_clock_waits_briefly() -> None:
    """One real wait of ~20 ms: the bucket really blocks on the event, not on a busy loop."""
    bucket = TokenBucket(50.0, burst=1)
    stop = threading.Event()
    started = time.monotonic()
    assert bucket.acquire(stop)
    assert bucket.acquire(stop)
    elapsed = time.monotonic() - started
    assert 0.01 <= elapsed < 0.2


def test_bucket_real_stop_from_another_thread_wakes_it() -> None:
    bucket = TokenBucket(0.5, burst=1)  # the next token is 2 s away
    stop = threading.Event()
    assert bucket.acquire(stop)
    timer = threading.Timer(0.02, stop.set)
    started = time.monotonic()
    timer.start()
    try:
        assert bucket.acquire(stop) is False
    finally:
        timer.cancel()
    assert time.monotonic() - started < 0.5
