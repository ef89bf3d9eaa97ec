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
