"""Group commit: one writer thread, many waiting callers, one fsync per batch.

With ``synchronous=FULL`` every SQLite commit is an fsync, and both a callback's 2xx and a
poll's result wait for theirs (DESIGN.md principle 4). One commit per observation caps the
daemon at one fsync per callback or poll, all queued on one write lock. Here callback and
poll threads hand their observations to a single writer and wait; while the writer commits
one batch the next accumulates, so under load many observations share one transaction, and
at low load an observation waits for nothing but its own commit. Each caller is answered only
after the batch holding its observation has committed.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from orchestrator.exceptions import OrchestratorError, StoreError
from orchestrator.logs import get_logger
from orchestrator.reconciler import Outcome, Pending, Reconciler

log = get_logger("orchestrator.groupcommit")

_STOP = object()


class GroupCommitter:
    def __init__(self, reconciler: Reconciler, *, max_batch: int = 256) -> None:
        self.reconciler = reconciler
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[Pending, Future[Outcome]] | object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._stopped = threading.Event()
        #: how many batches and items were committed (for tests and metrics)
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then stop. Later submits fail at once."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def submit(self, item: Pending, timeout_s: float = 10.0) -> Outcome:
        """Queue ``item`` and wait until it is committed; its outcome.

        Raises :class:`StoreError` if the writer is stopped, the commit failed, or it did not
        happen within ``timeout_s`` (the caller answers 503 and the upstream retries).
        """
        if self._stopped.is_set():
            raise StoreError("the group-commit writer is stopped")
        future: Future[Outcome] = Future()
        self._queue.put((item, future))
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError as exc:
            raise StoreError(f"observation not committed within {timeout_s}s") from exc

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._drain_after_stop()
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._commit(batch)  # type: ignore[arg-type]
                    self._drain_after_stop()
                    return
                batch.append(more)
            self._commit(batch)  # type: ignore[arg-type]

    def _drain_after_stop(self) -> None:
        leftovers = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[Pending, Future[Outcome]]]) -> None:
        try:
            outcomes = self.reconciler.observe_many([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            # one bad item must not fail its neighbours: commit them one by one
            log.warning("group_commit_batch_failed", size=len(batch), error=str(exc))
            for entry in batch:
                self._commit([entry])
            return
        self.batches += 1
        self.items += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)


def _fail(future: Future[Outcome], exc: Exception) -> None:
    if not isinstance(exc, OrchestratorError):
        log.error("group_commit_failed", error=repr(exc))
        exc = StoreError(f"commit failed: {exc}")
    future.set_exception(exc)
