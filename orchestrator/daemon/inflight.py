"""The jobs this daemon is working on right now, and the pool that works on them.

A job reaches a worker two ways: the tick's claim, and a wake-up (a callback, a success).
Both claim as the same owner, and an owner may re-claim its own lease, so the store alone
cannot keep one job from being worked on twice inside one daemon: this set does.

A wake-up for a job already in flight is not dropped when it asks ``again``: the work runs
once more when the current run ends (wake-ups meanwhile coalesce into that one rerun). A
callback arriving while the job's poll is on the wire needs it: that poll may have been
answered before the upstream finished.
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
        #: jobs in flight that a wake-up asked to run again when their current run ends
        self._again: dict[int, Callable[[], object]] = {}
        self._lock = threading.Lock()

    def count(self) -> int:
        with self._lock:
            return len(self._ids)

    def start(self, job_id: int, work: Callable[[], object], *, again: bool = False) -> bool:
        """Run ``work`` on the pool unless the job is already in flight.

        False when it is (with ``again``, ``work`` then runs once more after the current
        run), or when the pool is shutting down (the daemon's stop releases every lease it
        holds). A crash inside ``work`` is logged as ``<name>_crashed``.
        """
        with self._lock:
            if job_id in self._ids:
                if again:
                    self._again[job_id] = work
                return False
            self._ids.add(job_id)

        def run() -> None:
            current: Callable[[], object] | None = work
            while current is not None:
                try:
                    current()
                except Exception:
                    log.exception(f"{self.name}_crashed", job_id=job_id)
                with self._lock:
                    current = self._again.pop(job_id, None)
                    if current is None:
                        self._ids.discard(job_id)

        try:
            self.executor.submit(run)
        except RuntimeError:  # the pool is shutting down
            with self._lock:
                self._ids.discard(job_id)
                self._again.pop(job_id, None)
            return False
        return True
