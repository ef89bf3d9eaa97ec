"""The submitter: claims queued jobs and sends them upstream, once.

Order of writes (docs/durability.md): the job moves to `submitting` together with this
attempt's callback token hash BEFORE the request goes out; the taskId is recorded as soon as
the answer arrives. A crash in between leaves `submitting` with an expiring lease, which the
sweeper turns into `uncertain`: never a silent resubmit.

An answer that may hide a created task (5xx, maintenance: the upstream sometimes creates the
task and answers an error anyway) is retried only by the process that sent it, which holds
the job's lease until the retry is due: that attempt's callback, which proves the task exists
and calls the retry off, is addressed to it. If that process stops first, the lease lapses
and whoever takes the job finds the proof may have gone to a stopped process: the job goes
`uncertain` instead of being sent again (the machine's rule, on ``SubmitStarted.by``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from orchestrator import faultpoints
from orchestrator.daemon.breaker import CircuitBreaker
from orchestrator.daemon.credits import CreditGuard
from orchestrator.daemon.ratelimit import SharedWindow, SlidingWindow
from orchestrator.domain import Job
from orchestrator.exceptions import (
    UpstreamAmbiguous,
    UpstreamOutOfCredits,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
)
from orchestrator.logs import get_logger
from orchestrator.metrics import METRICS
from orchestrator.observations import SubmitAccepted, SubmitFailed, SubmitStarted, SubmitUnknown
from orchestrator.providers.base import Provider
from orchestrator.reconciler import Reconciler
from orchestrator.states import JobState
from orchestrator.stores.base import SUBMIT, Store
from orchestrator.tokens import callback_url, new_token

log = get_logger("orchestrator.submitter")


class Submitter:
    def __init__(
        self,
        store: Store,
        reconciler: Reconciler,
        provider: Provider,
        *,
        owner: str,
        public_url: str,
        limiter: SlidingWindow | SharedWindow,
        breaker: CircuitBreaker,
        lease_s: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
        batch: int = 20,
        credits: CreditGuard | None = None,
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.provider = provider
        self.owner = owner
        self.public_url = public_url
        self.limiter = limiter
        self.breaker = breaker
        self.lease_s = lease_s
        self.clock = clock
        self.stop = stop
        self.batch = batch
        self.credits = credits
        #: jobs this process holds until their retry is due (job id -> due), see the docstring
        self._held: dict[int, datetime] = {}

    def tick(self) -> int:
        """Claim what the rate limit allows now and submit it. Returns how many were sent."""
        if self.stop.is_set() or (self.credits is not None and self.credits.held()):
            return 0
        # while the breaker is half-open only its single probe may go out
        room = self.breaker.room(min(self.batch, self.limiter.available()))
        if room <= 0:
            return 0
        claimed = self._due_held(room)
        if len(claimed) < room:
            more = self.store.claim(
                SUBMIT, self.owner, self.clock(), self.lease_s, room - len(claimed)
            )
            claimed += more
        if not claimed:
            return 0
        # the balance is read only when there is something to pay for
        allowed = len(claimed) if self.credits is None else self.credits.allow(len(claimed))
        sent = 0
        for n, job in enumerate(claimed):
            if self.stop.is_set() or n >= allowed or (self.credits and self.credits.held()):
                self.store.release(job.id, self.owner)
                continue
            sent += self.submit_one(job)
        return sent

    def _due_held(self, room: int) -> list[Job]:
        """The held jobs whose retry is due, re-claimed (the batch claim skips held leases);
        a held job that left `queued` (its callback proved the attempt) is let go."""
        now = self.clock()
        due: list[Job] = []
        for job_id, at in sorted(self._held.items(), key=lambda item: item[1]):
            if at > now or len(due) >= room:
                break  # earliest due first: the rest are later
            del self._held[job_id]
            job = self.store.claim_job(job_id, self.owner, now, self.lease_s)
            if job is None:
                continue  # the hold lapsed and another process took it
            if job.state == JobState.QUEUED and job.not_before is not None and job.not_before > now:
                self._hold(job)
            elif job.state == JobState.QUEUED:
                due.append(job)
            else:
                self.store.release(job.id, self.owner)
        return due

    def _hold(self, job: Job) -> None:
        """Keep the lease of a job whose retry only this process may send, until it is due."""
        now = self.clock()
        due = job.not_before or now
        hold_s = max(0.0, (due - now).total_seconds()) + self.lease_s
        if self.store.claim_job(job.id, self.owner, now, hold_s) is not None:
            self._held[job.id] = due

    def submit_one(self, job: Job) -> int:
        wait = self.limiter.try_acquire()
        # the breaker's permit last: a half-open probe taken and then not sent would keep the
        # circuit open for another cooldown
        if wait > 0 or not self.breaker.allow():
            self.store.release(job.id, self.owner)
            return 0
        token, token_hash = new_token()
        started = self.reconciler.observe(
            job, SubmitStarted(token_hash=token_hash, by=self.owner), self.clock()
        )
        if started.transition is None or started.job.state != JobState.SUBMITTING:
            self.store.release(job.id, self.owner)
            return 0
        job = started.job
        attempt = job.attempt
        faultpoints.reach("submit.before_send")
        if self.credits is not None:
            self.credits.sent()
        try:
            task_id = self.provider.submit(
                job.kind, job.params, callback_url(self.public_url, token)
            )
        except UpstreamOutOfCredits as exc:
            METRICS.submits.labels("out_of_credits").inc()
            self.breaker.record(exc)  # it answered; nothing was created
            if self.credits is not None:
                self.credits.out_of_credits(exc.message)
            self._observe(
                job, SubmitFailed(False, exc.message, exc.code, attempt=attempt, no_credits=True)
            )
        except UpstreamRateLimited as exc:
            METRICS.submits.labels("rate_limited").inc()
            self.breaker.record(exc)  # it answered; it is up
            self.limiter.penalize(exc.retry_after or self.limiter.window_s)
            self._observe(job, SubmitFailed(True, exc.message, exc.code, exc.retry_after, attempt))
        except UpstreamAmbiguous as exc:
            METRICS.submits.labels("unknown").inc()
            self.breaker.record(exc)
            faultpoints.reach("submit.after_send")
            log.warning("submit_outcome_unknown", key=job.key, error=exc.message)
            self._observe(job, SubmitUnknown(exc.message, attempt))
        except UpstreamTransient as exc:
            METRICS.submits.labels("retryable").inc()
            self.breaker.record(exc)
            # an answer (not a request that never arrived) may hide a created task
            watcher = self.owner if exc.http_status is not None else None
            failed = SubmitFailed(True, exc.message, exc.code, attempt=attempt, watcher=watcher)
            outcome = self._observe(job, failed)
            if outcome is not None and outcome.state == JobState.QUEUED and watcher:
                self._hold(outcome)
        except UpstreamRejected as exc:
            METRICS.submits.labels("rejected").inc()
            self.breaker.record(exc)
            self._observe(job, SubmitFailed(False, exc.message, exc.code, attempt=attempt))
        except Exception as exc:
            # not an error the provider mapped: whether the request left is unknown, so the
            # safe reading is "maybe paid" (the provider maps everything raised before the
            # request leaves to UpstreamRejected, which fails the job without a submit)
            METRICS.submits.labels("unknown").inc()
            log.exception("submit_crashed", key=job.key)
            self._observe(job, SubmitUnknown(f"unexpected error: {type(exc).__name__}", attempt))
        else:
            METRICS.submits.labels("accepted").inc()
            self.breaker.record(None)
            faultpoints.reach("submit.after_send")
            self._observe(job, SubmitAccepted(task_id, attempt))
            faultpoints.reach("submit.after_record")
        return 1

    def _observe(
        self, job: Job, observation: SubmitAccepted | SubmitFailed | SubmitUnknown
    ) -> Job | None:
        outcome = self.reconciler.observe(job, observation, self.clock(), release_owner=self.owner)
        return outcome.job if outcome.transition is not None else None
