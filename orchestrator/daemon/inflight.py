"""The jobs this daemon is working on right now, and the pool that works on them.

A job reaches a worker two ways: the tick's claim, and a wake-up (a callback, a success).
Both claim as the same owner, and an owner may re-claim its own lease, so the store alone
cannot keep one job from being worked on twice inside one daemon: this set does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from orchestrator.logs import get_logger

log = get_logger("orchestrator.inflight")


class InFlight:
    def __init__(self, executor: ThreadPoolExecutor, name: str) -> None:
        self.executor = executor
        self.name = name
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def start(self, job_id: int, work: Callable[[], object]) -> bool:
        """Run ``work`` on the pool unless the job is already in flight.

        False when it is, or when the pool is shutting down (the daemon's stop releases every
        lease it holds). A crash inside ``work`` is logged as ``<name>_crashed``.
        """
        with self._lock:
            if job_id in self._ids:
                return False
            self._ids.add(job_id)

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception(f"{self.name}_crashed", job_id=job_id)
            finally:
                with self._lock:
                    self._ids.discard(job_id)

        try:
            self.executor.submit(run)
        except RuntimeError:  # the pool is shutting down
            with self._lock:
                self._ids.discard(job_id)
            return False
        return True
