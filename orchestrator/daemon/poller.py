"""The poller: asks the detail endpoint about due jobs, concurrently, through one pooled client.

Due jobs come from the store's indexed ``next_poll_at`` (a lease makes each poll single-owner).
A callback wakes a job through :meth:`Poller.poll_soon`: it is claimed and polled at once on
the pool instead of waiting for the next tick, so the verified answer lands within one
upstream round trip. If the job's poll is in flight here, it runs again once that one ends.
If another daemon holds the job's lease, ``relay`` hands the wake-up to the others (on
PostgreSQL: NOTIFY, :mod:`orchestrator.stores.wakes`): the holder polls it again when its
poll ends, instead of at its next tick.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from orchestrator import contradictions, faultpoints
from orchestrator.daemon.breaker import CircuitBreaker
from orchestrator.daemon.inflight import InFlight
from orchestrator.daemon.ratelimit import SharedTokenBucket, TokenBucket
from orchestrator.domain import Job
from orchestrator.exceptions import UpstreamError, UpstreamRateLimited
from orchestrator.groupcommit import GroupCommitter
from orchestrator.logs import get_logger
from orchestrator.metrics import METRICS
from orchestrator.observations import Polled, PollFailed
from orchestrator.providers.base import Provider
from orchestrator.reconciler import Outcome, Pending, Reconciler
from orchestrator.stores.base import POLL, Store

log = get_logger("orchestrator.poller")


class Poller:
    def __init__(
        self,
        store: Store,
        reconciler: Reconciler,
        provider: Provider,
        *,
        owner: str,
        executor: ThreadPoolExecutor,
        concurrency: int,
        bucket: TokenBucket | SharedTokenBucket,
        breaker: CircuitBreaker,
        lease_s: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
        batch: int = 200,
        committer: GroupCommitter | None = None,
        relay: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.provider = provider
        self.owner = owner
        self.executor = executor
        self.concurrency = concurrency
        self.bucket = bucket
        self.breaker = breaker
        self.lease_s = lease_s
        self.clock = clock
        self.stop = stop
        self.batch = batch
        #: poll results share the daemon's group commit (one fsync per batch) when given
        self.committer = committer
        #: a wake-up for a job another daemon holds goes to them through this
        self.relay = relay
        self._inflight = InFlight(executor, "poll")

    def tick(self) -> int:
        """Claim due jobs up to the free capacity and hand them to the pool."""
        if self.stop.is_set():
            return 0
        # while the breaker is half-open only its single probe may go out
        room = self.breaker.room(min(self.batch, self.concurrency * 4 - self._inflight.count()))
        if room <= 0:
            return 0
        jobs = self.store.claim(POLL, self.owner, self.clock(), self.lease_s, room)
        for job in jobs:
            # already in flight: a poll_soon of ours has it, and its lease is ours
            self._inflight.start(job.id, functools.partial(self._poll, job))
        return len(jobs)

    def poll_soon(self, job_id: int, *, relayed: bool = False) -> None:
        """A callback says this job moved: poll it now (on the pool, not the caller's thread).
        ``relayed``: the wake-up came from another daemon (it is not relayed back)."""
        if not self.stop.is_set():
            work = functools.partial(self._claim_and_poll, job_id, relayed)
            self._inflight.start(job_id, work, again=True)

    def _claim_and_poll(self, job_id: int, relayed: bool = False) -> None:
        job = self.store.claim_job(job_id, self.owner, self.clock(), self.lease_s)
        if job is None:  # another daemon holds it
            if self.relay is not None and not relayed:
                self.relay(job_id)
            return
        if job.task_id is None or job.next_poll_at is None:
            self.store.release(job.id, self.owner)
            return
        self._poll(job)

    def _poll(self, job: Job) -> None:
        if job.task_id is None or not self.breaker.allow() or not self.bucket.acquire(self.stop):
            self.store.release(job.id, self.owner)
            return
        if job.next_poll_at is not None:
            late = (self.clock() - job.next_poll_at).total_seconds()
            METRICS.poll_lateness.observe(max(0.0, late))
        try:
            report = self.provider.fetch(job.kind, job.task_id)
        except UpstreamError as exc:
            self.breaker.record(exc)
            retry_after = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
            log.info("poll_failed", key=job.key, code=exc.code, error=exc.message)
            self._record(job, PollFailed(exc.message, exc.code, retry_after))
            return
        self.breaker.record(None)
        faultpoints.reach("poll.before_record")
        try:
            outcome = self._record(job, Polled(report))
        except Exception as exc:
            # An answer the store cannot hold (or a bug folding it) must not become a crash
            # loop of re-polls once per lease: record it as a failed poll, which backs off.
            # If the database itself is down this fails too, and the lease expires.
            log.exception("poll_record_failed", key=job.key)
            self._record(job, PollFailed(f"answer could not be recorded: {type(exc).__name__}"))
            return
        if outcome.job.callbacks:
            # make forged or stale callbacks visible (they changed nothing in verify mode)
            try:
                contradictions.check(self.reconciler, outcome.job, report, self.clock())
            except Exception:
                log.exception("contradiction_check_failed", key=job.key)

    def _record(self, job: Job, observation: Polled | PollFailed) -> Outcome:
        """Fold the poll's answer in and give up the lease, through the group commit if any."""
        now = self.clock()
        if self.committer is not None:
            pending = Pending(job.id, observation, now, release_owner=self.owner)
            return self.committer.submit(pending)
        return self.reconciler.observe(job, observation, now, release_owner=self.owner)
