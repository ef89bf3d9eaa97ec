"""The releaser: moves pipelines on. Each tick it looks at every `waiting` job and acts on
what :func:`orchestrator.pipelines.settle` decides from its parents (or, for an expanded
for_each job, its children):

* every parent completed: the params are resolved, checked like any submit, and the job is
  released to `queued` (``parents_completed``); a for_each job records one child per item
  first (``create_job``, idempotent by key), then ``children_recorded``;
* a parent failed, timed out or was cancelled: the job fails at stage ``dependency``, and so,
  tick by tick, does every job below it; none of them is submitted;
* a for_each job whose children all completed is `completed`.

A pass runs when a job finished here (:meth:`Releaser.wake`) and otherwise every
``sweep_s`` (a job another daemon finished, a job recorded by another process whose parents
are done already), so an idle pipeline costs one query per sweep, not per tick.

Every change is an observation through the reconciler (a compare-and-set with its event), so
two daemons releasing the same job release it once, and a crash between recording the
children and marking the for_each job leaves nothing that the next tick does not finish.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime

from orchestrator.domain import Job, NewJob
from orchestrator.exceptions import InvalidParams, JobKeyConflict
from orchestrator.kinds import validate_params
from orchestrator.logs import get_logger
from orchestrator.observations import (
    ChildrenCompleted,
    ChildrenRecorded,
    DependencyFailed,
    Observation,
    ParentsCompleted,
)
from orchestrator.pipelines import (
    BAD_REFERENCE,
    Done,
    Expand,
    Fail,
    Release,
    Wait,
    settle,
)
from orchestrator.reconciler import Reconciler
from orchestrator.service import related_jobs
from orchestrator.states import JobState
from orchestrator.stores.base import Store

log = get_logger("orchestrator.releaser")

#: passes per tick: a failure runs down one level of a pipeline per pass
MAX_PASSES = 20
#: a full look at the waiting jobs at least this often, woken or not (seconds)
SWEEP_S = 5.0


class Releaser:
    def __init__(
        self,
        store: Store,
        reconciler: Reconciler,
        *,
        clock: Callable[[], datetime],
        stop: threading.Event,
        sweep_s: float = SWEEP_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.clock = clock
        self.stop = stop
        self.sweep_s = sweep_s
        self._monotonic = monotonic
        self._woken = threading.Event()
        self._woken.set()  # the first tick looks
        self._last_pass = -math.inf

    def wake(self) -> None:
        """A job finished: look at the waiting jobs at the next tick."""
        self._woken.set()

    def tick(self) -> int:
        """When woken or due: settle every waiting job, again while that changed something.
        Returns how many jobs moved."""
        now = self._monotonic()
        if not self._woken.is_set() and now - self._last_pass < self.sweep_s:
            return 0
        self._woken.clear()
        self._last_pass = now
        moved = 0
        for _ in range(MAX_PASSES):
            if self.stop.is_set():
                break
            changed = sum(self.settle_one(job) for job in self.store.list_jobs(states=[_W]))
            moved += changed
            if not changed:
                break
        return moved

    def settle_one(self, job: Job) -> int:
        decision = settle(job, related_jobs(self.store, job))
        if isinstance(decision, Wait):
            return 0
        observation: Observation
        if isinstance(decision, Release):
            problem = _invalid(job.kind, decision.params)
            observation = (
                DependencyFailed(BAD_REFERENCE, f"once resolved, {problem}")
                if problem
                else ParentsCompleted(decision.params)
            )
        elif isinstance(decision, Expand):
            observation = self._expand(job, decision)
        elif isinstance(decision, Done):
            observation = ChildrenCompleted()
        else:
            assert isinstance(decision, Fail)
            observation = DependencyFailed(decision.code, decision.message)
        outcome = self.reconciler.observe(job, observation, self.clock())
        return 1 if outcome.transition is not None else 0

    def _expand(self, job: Job, decision: Expand) -> Observation:
        for key, params in decision.children:
            problem = _invalid(job.kind, params)
            if problem:
                return DependencyFailed(BAD_REFERENCE, f"child {key!r}, once resolved: {problem}")
        for key, params in decision.children:
            new = NewJob(
                key=key,
                kind=job.kind,
                params=params,
                provider=job.provider,
                after=(job.key,),
                resolved=True,
            )
            try:
                child, created = self.store.create_job(new, self.clock())
            except JobKeyConflict as exc:
                return DependencyFailed(BAD_REFERENCE, f"cannot record child {key!r}: {exc}")
            if created:
                log.info("job_enqueued", key=child.key, kind=child.kind, source="for_each")
        return ChildrenRecorded(tuple(key for key, _ in decision.children))


def _invalid(kind: str, params: dict[str, object]) -> str | None:
    try:
        validate_params(kind, params)
    except InvalidParams as exc:
        return str(exc)
    return None


_W = JobState.WAITING
