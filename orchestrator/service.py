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

from orchestrator.clock import isoformat, utcnow
from orchestrator.config import validate_job_key
from orchestrator.credits import RECORD as CREDITS_RECORD
from orchestrator.domain import (
    Event,
    Job,
    NewJob,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from orchestrator.exceptions import (
    ConfigError,
    InvalidParams,
    InvalidTransition,
    JobNotFound,
    UsageError,
)
from orchestrator.kinds import validate_params
from orchestrator.machine import Policy
from orchestrator.notifications import DISABLED_RECORD
from orchestrator.observations import (
    CancelRequested,
    DependencyRetried,
    Observation,
    Resolution,
    ResolveRequested,
    RetryRequested,
)
from orchestrator.pipelines import (
    PARENT_FAILED,
    Known,
    Spec,
    Wait,
    check,
    check_all,
    expanded,
    ordered,
    related_keys,
    settle,
    unresolved_fields,
)
from orchestrator.reconciler import Reconciler
from orchestrator.states import FINISHED, JobState
from orchestrator.stores.base import Store


def as_keys(after: str | Sequence[str] | None) -> tuple[str, ...]:
    """``after`` as given (one key or a list) as a tuple of keys."""
    if after is None:
        return ()
    if isinstance(after, str):
        return (after,)
    if not all(isinstance(key, str) for key in after):
        raise InvalidParams("after must be a job key or a list of job keys")
    return tuple(after)


def children_index(jobs: Sequence[Job]) -> dict[str, list[str]]:
    """Each job's children (the jobs whose parents name it), in creation order."""
    index: dict[str, list[str]] = {}
    for job in jobs:
        for parent in job.parents:
            index.setdefault(parent, []).append(job.key)
    return index


def tree_order(jobs: Sequence[Job]) -> list[tuple[Job, str]]:
    """``jobs`` as a forest: each job after its first listed parent, with a prefix that
    draws the tree ("├─ ", "│  └─ ", ...); a job whose parents are not listed is a root."""
    by_key = {job.key: job for job in jobs}
    below: dict[str, list[Job]] = {}
    roots: list[Job] = []
    for job in jobs:
        parent = next((p for p in job.parents if p in by_key), None)
        if parent is None:
            roots.append(job)
        else:
            below.setdefault(parent, []).append(job)
    out: list[tuple[Job, str]] = []
    placed: set[str] = set()

    def place(job: Job, lead: str, prefix: str) -> None:
        if job.key in placed:
            return
        placed.add(job.key)
        out.append((job, prefix))
        kids = below.get(job.key, [])
        for n, kid in enumerate(kids):
            last = n == len(kids) - 1
            place(kid, lead + ("   " if last else "│  "), lead + ("└─ " if last else "├─ "))

    for root in roots:
        place(root, "", "")
    for job in jobs:  # a cycle cannot be recorded; anything left is listed flat
        place(job, "", "")
    return out


def tree_json(
    job: Job, index: Mapping[str, Sequence[str]], hold: str | None = None
) -> dict[str, Any]:
    """The job as JSON with its children (status --json, show --json, the HTTP API) and,
    for a queued job, why submitting is held (``held``: the credit guard's reason)."""
    body = job.to_json()
    body["children"] = list(index.get(job.key, ()))
    body["held"] = hold if job.state == JobState.QUEUED else None
    return body


@dataclass(frozen=True)
class JobDetail:
    job: Job
    events: list[Event]
    why: str  #: one sentence: why the job is where it is, and what happens next
    #: the jobs that wait for this one (after = it; a for_each job's children)
    children: tuple[str, ...] = ()
    #: why submitting is held (the credit guard), when it is
    hold: str | None = None
    #: the job's notifications and each one's attempts, oldest first
    notifications: tuple[tuple[Notification, tuple[NotificationAttempt, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        body = tree_json(self.job, {self.job.key: self.children}, self.hold)
        body["why"] = self.why
        body["notifications"] = [
            notification_json(n, attempts) for n, attempts in self.notifications
        ]
        return body

    def show_json(self) -> dict[str, Any]:
        """What ``orchestrator show --json`` prints: :meth:`to_json` with the event log."""
        body = self.to_json()
        body["events"] = [event_json(e) for e in self.events]
        return body


def event_json(event: Event) -> dict[str, Any]:
    """One event of ``show --json``."""
    return {
        "at": isoformat(event.at),
        "source": event.source,
        "type": event.type,
        "from_state": event.from_state.value if event.from_state else None,
        "to_state": event.to_state.value if event.to_state else None,
        "note": event.note,
        "node": event.node,
    }


def notification_json(
    row: Notification, attempts: Sequence[NotificationAttempt] | None = None
) -> dict[str, Any]:
    """An outbox row for people and scripts (its body is the job JSON: not repeated)."""
    from orchestrator.clock import isoformat

    body: dict[str, Any] = {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "target": row.target,
        "event": row.event,
        "job_key": (row.body.get("data") or {}).get("key"),
        "state": row.state.value,
        "attempts": row.attempts,
        "next_attempt_at": isoformat(row.next_attempt_at),
        "created_at": isoformat(row.created_at),
        "delivered_at": isoformat(row.delivered_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
    }
    if attempts is not None:
        body["attempt_log"] = [
            {
                "at": isoformat(a.at),
                "status": a.status,
                "error": a.error,
                "seconds": round(a.duration_s, 3),
            }
            for a in attempts
        ]
    return body


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
        self,
        kind: str,
        params: Mapping[str, Any],
        key: str | None = None,
        *,
        after: str | Sequence[str] | None = None,
        for_each: str | None = None,
    ) -> tuple[Job, bool]:
        """Record a job; the same key with the same params returns the existing one.

        With ``after`` the job waits for those parents (recorded jobs) and its params may
        refer to what they produce (orchestrator.pipelines)."""
        parents = as_keys(after)
        if key is None:
            key = f"{kind.replace('_', '-')}-{self.clock():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        spec = self._spec(key, kind, params, parents, for_each)
        check(spec, self._known)
        return self._create(spec)

    def submit_all(self, specs: Sequence[Spec]) -> list[tuple[Job, bool]]:
        """Record jobs that may wait for each other (a config's [[jobs]]): every one is
        checked before any is recorded, parents first."""
        checked = [self._spec(s.key, s.kind, s.params, s.after, s.for_each) for s in specs]
        check_all(checked, self._known)
        return [self._create(spec) for spec in ordered(checked)]

    def _spec(
        self,
        key: str,
        kind: str,
        params: Mapping[str, Any],
        after: tuple[str, ...],
        for_each: str | None,
    ) -> Spec:
        try:
            validate_job_key(key)
            if for_each is not None:
                validate_job_key(f"{key}.{99}", "a for_each job's key")
        except ConfigError as exc:
            raise InvalidParams(str(exc)) from None
        if for_each is not None and not isinstance(for_each, str):
            raise InvalidParams("for_each must be a string (KEY.tracks or KEY.result.PATH)")
        unresolved = unresolved_fields(params) if after else frozenset()
        try:
            validate_params(kind, params, unresolved)
        except InvalidParams as exc:
            raise InvalidParams(f"job {key!r}: {exc}") from None
        return Spec(key, kind, dict(params), after, for_each)

    def _known(self, key: str) -> Known | None:
        try:
            job = self.store.get_job_by_key(key)
        except JobNotFound:
            return None
        return Known(job.kind, job.for_each)

    def _create(self, spec: Spec) -> tuple[Job, bool]:
        new = NewJob(
            key=spec.key,
            kind=spec.kind,
            params=dict(spec.params),
            provider=self.provider,
            after=spec.after,
            for_each=spec.for_each,
        )
        return self.store.create_job(new, self.clock())

    def get(self, key: str) -> Job:
        return self.store.get_job_by_key(key)

    def list(
        self, *, states: Sequence[JobState] | None = None, kind: str | None = None
    ) -> list[Job]:
        return self.store.list_jobs(states=states, kind=kind)

    def detail(self, key: str) -> JobDetail:
        job = self.store.get_job_by_key(key)
        events = self.store.events(job.id)
        hold = self.hold()
        why = self.why(job, events, hold)
        children = tuple(children_index(self.store.list_jobs()).get(job.key, ()))
        told = tuple(
            (n, tuple(self.store.notification_attempts(n.id)))
            for n in self.store.notifications(job_id=job.id)
        )
        return JobDetail(job, events, why, children, hold, told)

    def why(self, job: Job, events: Sequence[Event], hold: str | None) -> str:
        """Why the job is where it is (``show``, the status page): its state explained, the
        older attempts' paid tasks from its events, the credit guard's ``hold`` if queued."""
        why = self._waiting_why(job) if job.state == JobState.WAITING else explain(job, self.policy)
        older = older_tasks(job, events)
        if older:
            listed = ", ".join(f"{task} (attempt {attempt})" for attempt, task in older)
            why += f"; older attempts' tasks exist upstream (paid for, not tracked): {listed}"
        if hold and job.state == JobState.QUEUED:
            why += f"; held: {hold}"
        return why

    # --- notifications ---------------------------------------------------------------------

    def replay(
        self,
        ids: Sequence[int] = (),
        *,
        since: datetime | None = None,
        dead: bool = False,
    ) -> int:
        """Send those notifications again (the same webhook-id), due now. Returns how many."""
        chosen: list[int] = list(ids)
        if ids:
            known = {n.id for n in self.store.notifications(ids=ids)}
            missing = sorted(set(ids) - known)
            if missing:
                raise UsageError(f"no notification with id {', '.join(map(str, missing))}")
        if since is not None:
            chosen += [n.id for n in self.store.notifications(since=since)]
        if dead:
            chosen += [n.id for n in self.store.notifications(states=[NotificationState.DEAD])]
        if not ids and since is None and not dead:
            raise UsageError("replay what? give notification ids, --since TIME or --dead")
        return self.store.replay_notifications(sorted(set(chosen)), self.clock())

    def disabled_targets(self) -> dict[str, Any]:
        return dict(self.store.account(DISABLED_RECORD) or {})

    def enable_target(self, name: str) -> bool:
        """Let a target disabled by a 410 receive again; False if it was not disabled."""
        disabled = self.disabled_targets()
        if disabled.pop(name, None) is None:
            return False
        self.store.set_account(DISABLED_RECORD, disabled, self.clock())
        # what waited for it goes now, on a fresh schedule
        held = [
            n.id
            for n in self.store.notifications(states=[NotificationState.PENDING])
            if n.target == name
        ]
        self.store.replay_notifications(held, self.clock())
        return True

    def hold(self) -> str | None:
        """Why the daemon holds every submit now (the credit guard), or None."""
        record = self.store.account(CREDITS_RECORD) or {}
        reason = record.get("hold")
        return reason if isinstance(reason, str) else None

    def _waiting_why(self, job: Job) -> str:
        decision = settle(job, related_jobs(self.store, job))
        if isinstance(decision, Wait):
            return decision.why
        return (
            "ready: the daemon acts on it at its next tick ("
            + type(decision).__name__.lower()
            + ")"
        )

    def cancel(self, key: str) -> Job:
        return self._operate(key, CancelRequested(), "cancel", "a job that is not finished")

    def cancel_tree(self, key: str) -> tuple[Job, ...]:
        """Cancel the job and every descendant not finished yet; returns those cancelled."""
        root = self.store.get_job_by_key(key)
        jobs = {job.key: job for job in self.store.list_jobs()}
        index = children_index(list(jobs.values()))
        cancelled: list[Job] = []
        for member in [root.key, *descendants(root.key, index)]:
            job = jobs.get(member)
            if job is None or job.state in FINISHED - {JobState.TIMED_OUT}:
                continue
            outcome = self.reconciler.observe(job, CancelRequested(), self.clock())
            if outcome.transition is not None:
                cancelled.append(outcome.job)
        return tuple(cancelled)

    def retry(self, key: str) -> Job:
        """A new attempt; a for_each job retries its children that did not complete, and
        every descendant the job failed (stage dependency) waits for it again."""
        job = self._operate(key, RetryRequested(), "retry", "a failed, cancelled or timed-out job")
        for child in expanded(job) or ():
            try:
                member = self.store.get_job_by_key(child)
            except JobNotFound:
                continue
            if member.state in (JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT):
                self.reconciler.observe(member, RetryRequested(), self.clock())
        self._revive(job)
        return self.store.get_job_by_key(key)

    def _revive(self, retried: Job) -> None:
        """Descendants failed because ``retried`` (or one of them) failed wait again."""
        jobs = {job.key: job for job in self.store.list_jobs()}
        index = children_index(list(jobs.values()))
        todo = [retried.key]
        while todo:
            key = todo.pop()
            job = jobs.get(key)
            # a for_each child's failure failed its for_each job: that one waits again too
            dependents = list(index.get(key, ()))
            if job is not None:
                dependents += [p for p in job.parents if key in (expanded(jobs[p]) or ())]
            for name in dependents:
                other = jobs.get(name)
                if other is None or other.error is None or other.error.code != PARENT_FAILED:
                    continue
                outcome = self.reconciler.observe(other, DependencyRetried(key), self.clock())
                if outcome.transition is not None:
                    jobs[name] = outcome.job
                    todo.append(name)

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


def related_jobs(store: Store, job: Job) -> dict[str, Job | None]:
    """What :func:`orchestrator.pipelines.settle` needs of ``job``: its parents (or, for an
    expanded for_each job, its children) by key, None for one that does not exist."""
    related: dict[str, Job | None] = {}
    for key in related_keys(job):
        try:
            related[key] = store.get_job_by_key(key)
        except JobNotFound:
            related[key] = None
    return related


def descendants(key: str, index: Mapping[str, Sequence[str]]) -> list[str]:
    """Every job below ``key`` (children, their children, ...), each once, nearest first."""
    found: list[str] = []
    seen = {key}
    todo = [key]
    while todo:
        for child in index.get(todo.pop(0), ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                todo.append(child)
    return found


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
    if job.state == s.WAITING:
        children = expanded(job)
        if children is not None:
            return f"a for_each job: done when its {len(children)} children are"
        return f"waiting for {', '.join(job.parents)} to complete"
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
    if job.state == s.COMPLETED and job.for_each is not None:
        children = expanded(job) or ()
        return f"done: every child completed ({', '.join(children) or 'none'})"
    if job.state == s.COMPLETED:
        return f"done: {len(job.artifacts)} file(s) stored and verified"
    if job.state == s.FAILED:
        err = job.error
        return f"failed at {err.stage}: {err.message}" if err else "failed"
    if job.state == s.TIMED_OUT:
        late = f"; still checking for a late result at {nxt}" if job.next_poll_at else ""
        return f"no upstream outcome before the deadline{late}"
    return "cancelled by the operator"
