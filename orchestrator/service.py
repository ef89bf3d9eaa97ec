"""Operator and client use cases, shared by the CLI, the HTTP API and the Python API.

Recording a job needs only the store: the daemon (if running) picks it up. Operator actions
(cancel, retry, resolve) are observations through the reconciler like everything else.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.clock import utcnow
from orchestrator.config import validate_job_key
from orchestrator.domain import Event, Job, NewJob
from orchestrator.exceptions import ConfigError, InvalidParams, InvalidTransition, UsageError
from orchestrator.kinds import validate_params
from orchestrator.machine import Policy
from orchestrator.observations import (
    CancelRequested,
    Observation,
    Resolution,
    ResolveRequested,
    RetryRequested,
)
from orchestrator.reconciler import Reconciler
from orchestrator.states import JobState
from orchestrator.stores.base import Store


@dataclass(frozen=True)
class JobDetail:
    job: Job
    events: list[Event]
    why: str  #: one sentence: why the job is where it is, and what happens next


class JobService:
    def __init__(
        self,
        store: Store,
        *,
        provider: str,
        policy: Policy | None = None,
        reconciler: Reconciler | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.provider = provider
        self.policy = policy or Policy()
        self.reconciler = reconciler or Reconciler(store, self.policy)
        self.clock = clock

    def submit(
        self, kind: str, params: Mapping[str, Any], key: str | None = None
    ) -> tuple[Job, bool]:
        """Record a job; the same key with the same params returns the existing one."""
        validate_params(kind, params)
        if key is None:
            key = f"{kind.replace('_', '-')}-{self.clock():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        else:
            try:
                validate_job_key(key)
            except ConfigError as exc:
                raise InvalidParams(str(exc)) from None
        return self.store.create_job(
            NewJob(key=key, kind=kind, params=dict(params), provider=self.provider), self.clock()
        )

    def get(self, key: str) -> Job:
        return self.store.get_job_by_key(key)

    def list(
        self, *, states: Sequence[JobState] | None = None, kind: str | None = None
    ) -> list[Job]:
        return self.store.list_jobs(states=states, kind=kind)

    def detail(self, key: str) -> JobDetail:
        job = self.store.get_job_by_key(key)
        events = self.store.events(job.id)
        why = explain(job, self.policy)
        older = older_tasks(job, events)
        if older:
            listed = ", ".join(f"{task} (attempt {attempt})" for attempt, task in older)
            why += f"; older attempts' tasks exist upstream (paid for, not tracked): {listed}"
        return JobDetail(job, events, why)

    def cancel(self, key: str) -> Job:
        return self._operate(key, CancelRequested(), "cancel", "a job that is not finished")

    def retry(self, key: str) -> Job:
        return self._operate(key, RetryRequested(), "retry", "a failed, cancelled or timed-out job")

    def resolve(self, key: str, action: Resolution, task_id: str | None = None) -> Job:
        if action == Resolution.TASK_ID and not task_id:
            raise UsageError("resolve --task-id needs the upstream taskId")
        return self._operate(key, ResolveRequested(action, task_id), "resolve", "an uncertain job")

    def _operate(self, key: str, observation: Observation, verb: str, applies: str) -> Job:
        job = self.store.get_job_by_key(key)
        outcome = self.reconciler.observe(job, observation, self.clock())
        if outcome.transition is None:
            raise InvalidTransition(
                f"cannot {verb} job {key!r}: it is {outcome.job.state.value}; "
                f"{verb} applies to {applies}"
            )
        return outcome.job


def older_tasks(job: Job, events: Sequence[Event]) -> list[tuple[int, str]]:
    """Upstream tasks of attempts other than the job's current one, from its event log:
    (attempt, taskId) in the order they were first seen. Each was paid for."""
    found: dict[str, int] = {}
    for event in events:
        attempt = event.payload.get("attempt")
        if not isinstance(attempt, int) or attempt == job.attempt:
            continue
        task = None
        if event.type == "submit_accepted":
            task = event.payload.get("task_id")
        elif event.type == "callback_received":
            report = event.payload.get("report")
            task = report.get("task_id") if isinstance(report, dict) else None
        if isinstance(task, str) and task != job.task_id and task not in found:
            found[task] = attempt
    return [(attempt, task) for task, attempt in found.items()]


def explain(job: Job, policy: Policy) -> str:
    """Why the job is where it is, in one sentence, for `show`."""
    from orchestrator.clock import isoformat

    s = JobState
    nxt = isoformat(job.next_poll_at)
    if job.state == s.QUEUED:
        when = f" (not before {isoformat(job.not_before)})" if job.not_before else ""
        return f"waiting for the daemon to submit it{when}"
    if job.state == s.SUBMITTING:
        return "a worker is sending the submit request now"
    if job.state == s.UNCERTAIN:
        return (
            "UNCERTAIN: the submit may or may not have reached the upstream (a crash or a lost "
            "answer); a callback with its token will resolve it, otherwise run "
            f"`orchestrator resolve {job.key} --task-id ID | --resubmit | --fail` "
            f"(policy: {policy.uncertain_policy})"
        )
    if job.state in (s.PENDING, s.RUNNING):
        upstream = job.upstream_status or "PENDING"
        text = f"upstream says {upstream}"
        if nxt:
            text += f"; next poll at {nxt}"
        if job.deadline_at:
            text += f", deadline {isoformat(job.deadline_at)}"
        return text
    if job.state == s.SUCCEEDED:
        left = [a.name for a in job.artifacts if a.state.value != "stored"]
        return f"upstream succeeded; downloading {len(left)} file(s): {', '.join(left)}"
    if job.state == s.COMPLETED:
        return f"done: {len(job.artifacts)} file(s) stored and verified"
    if job.state == s.FAILED:
        err = job.error
        return f"failed at {err.stage}: {err.message}" if err else "failed"
    if job.state == s.TIMED_OUT:
        late = f"; still checking for a late result at {nxt}" if job.next_poll_at else ""
        return f"no upstream outcome before the deadline{late}"
    return "cancelled by the operator"
