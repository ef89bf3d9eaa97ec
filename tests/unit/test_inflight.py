from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from orchestrator.daemon.inflight import InFlight


def test_one_job_runs_once_at_a_time_and_is_free_again_after() -> None:
    gate, ran = threading.Event(), []
    with ThreadPoolExecutor(2) as pool:
        inflight = InFlight(pool, "poll")
        assert inflight.start(7, lambda: (gate.wait(5), ran.append(1)))
        assert not inflight.start(7, lambda: ran.append(2))  # already in flight
        assert inflight.count() == 1
        gate.set()
    assert ran == [1] and inflight.count() == 0
    with ThreadPoolExecutor(1) as pool:
        inflight.executor = pool
        assert inflight.start(7, lambda: ran.append(3))
    assert ran == [1, 3]


def test_a_crash_is_contained_and_frees_the_job() -> None:
    def boom() -> None:
        raise RuntimeError("bug")

    with ThreadPoolExecutor(1) as pool:
        inflight = InFlight(pool, "download")
        assert inflight.start(1, boom)
    assert inflight.count() == 0


def test_a_shut_down_pool_refuses_and_frees_the_job() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    inflight = InFlight(pool, "poll")
    assert not inflight.start(1, lambda: None)
    assert inflight.count() == 0


def test_a_wake_up_for_a_job_in_flight_runs_it_once_more_after() -> None:
    gate, ran = threading.Event(), []
    with ThreadPoolExecutor(2) as pool:
        inflight = InFlight(pool, "poll")
        assert inflight.start(7, lambda: (gate.wait(5), ran.append("tick")))
        # a callback while the poll is on the wire: its answer may predate the finish
        assert not inflight.start(7, lambda: ran.append("wake 1"), again=True)
        assert not inflight.start(7, lambda: ran.append("wake 2"), again=True)  # coalesced
        assert not inflight.start(7, lambda: ran.append("tick 2"))  # a tick's claim is not
        assert inflight.count() == 1
        gate.set()
    assert ran == ["tick", "wake 2"] and inflight.count() == 0


def test_a_rerun_that_crashes_frees_the_job_too() -> None:
    gate, ran = threading.Event(), []

    def boom() -> None:
        ran.append("boom")
        raise RuntimeError("bug")

    with ThreadPoolExecutor(1) as pool:
        inflight = InFlight(pool, "poll")
        assert inflight.start(3, lambda: gate.wait(5))
        inflight.start(3, boom, again=True)
        gate.set()
    assert ran == ["boom"] and inflight.count() == 0
