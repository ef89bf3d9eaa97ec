"""The one reconcile step every source goes through.

Submitter, poller, callback endpoint, downloader, deadlines and operator commands all build
an observation and call :meth:`Reconciler.observe`. It reads the job, asks the pure
:func:`orchestrator.machine.decide`, and writes the outcome as a compare-and-set together
with the event row. A lost race (:class:`StaleJob`) re-reads and decides again, so the
observation is folded into whatever the job has become meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator import faultpoints
from orchestrator.domain import Job, NewEvent, NewNotification
from orchestrator.exceptions import ObservationError, OrchestratorError, StaleJob, StoreError
from orchestrator.logs import get_logger
from orchestrator.machine import Policy, Transition, decide, ignored_note
from orchestrator.observations import CallbackReceived, Observation, Polled, PollFailed
from orchestrator.states import JobState
from orchestrator.stores.base import Store

log = get_logger("orchestrator.reconciler")

MAX_RACES = 20


@dataclass(frozen=True)
class Pending:
    """One observation waiting for a group commit (:meth:`Reconciler.observe_many`)."""

    job_id: int
    observation: Observation
    now: datetime
    raw: Any = None
    #: give up this owner's lease in the same transaction (a finished poll)
    release_owner: str | None = None


@dataclass(frozen=True)
class Outcome:
    job: Job  #: the job as stored after this observation
    transition: Transition | None  #: None: a duplicate, stale or disallowed observation
    from_state: JobState

    @property
    def changed_state(self) -> bool:
        return self.job.state != self.from_state


class Reconciler:
    def __init__(
        self,
        store: Store,
        policy: Policy | None = None,
        *,
        on_wake: Callable[[int], None] | None = None,
        on_transition: Callable[[Outcome], None] | None = None,
        outbox: Callable[[Job, Job, datetime], list[NewNotification]] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or Policy()
        self._on_wake = on_wake
        self._on_transition = on_transition
        #: the notifications a change causes (orchestrator.notifications.outbox_for), written
        #: in the change's own transaction
        self._outbox = outbox

    def observe(
        self,
        job: Job,
        observation: Observation,
        now: datetime,
        *,
        raw: Any = None,
        note: str = "",
        release_owner: str | None = None,
    ) -> Outcome:
        """Fold ``observation`` into ``job`` and persist it with its event row.

        ``raw`` (a callback's body, a poll's answer) is stored in the event payload.
        ``release_owner`` gives up that owner's lease in the same transaction.
        """
        current = job
        for _ in range(MAX_RACES):
            try:
                transition, stored = self._step(
                    self.store.apply, current, observation, now, raw, note, release_owner
                )
            except StaleJob:
                current = self.store.get_job(current.id)
                continue
            outcome = Outcome(stored, transition, current.state)
            self._report(outcome, observation)
            return outcome
        raise StoreError(f"job {job.key}: gave up after {MAX_RACES} lost compare-and-sets")

    def observe_many(self, items: Sequence[Pending]) -> list[Outcome]:
        """Fold several observations in ONE transaction (group commit: one fsync for all).

        Each job is read inside the transaction, so observations of the same job in one batch
        see each other: the batch's jobs are read at once (one round trip, not one per
        observation), and a job is read again once the batch has written it or lost a race
        for it. Nothing is reported (logs, wake-ups) until the batch has committed; if the
        transaction fails, nothing of the batch is written and the error propagates.
        """
        outcomes: list[Outcome] = []
        with self.store.unit_of_work() as unit:
            unread = unit.get_jobs([item.job_id for item in items])
            for item in items:
                for _ in range(MAX_RACES):
                    current = unread.pop(item.job_id, None) or unit.get_job(item.job_id)
                    try:
                        transition, stored = self._step(
                            unit.apply,
                            current,
                            item.observation,
                            item.now,
                            item.raw,
                            "",
                            item.release_owner,
                        )
                    except StaleJob:  # PostgreSQL: another node won the row; read again
                        continue
                    outcomes.append(Outcome(stored, transition, current.state))
                    break
                else:
                    raise StoreError(f"job {item.job_id}: gave up after {MAX_RACES} races")
        for outcome, item in zip(outcomes, items, strict=True):
            self._report(outcome, item.observation)
        return outcomes

    def _step(
        self,
        apply: Callable[..., Job],
        current: Job,
        observation: Observation,
        now: datetime,
        raw: Any,
        note: str,
        release_owner: str | None,
    ) -> tuple[Transition | None, Job]:
        """Decide and write one observation with ``apply`` (the store's or a unit's);
        :class:`StaleJob` when the compare-and-set lost, for the caller to read again."""
        with _deterministic_failures(current, observation):
            transition, changes, event = self._fold(current, observation, now, raw, note)
            faultpoints.reach(f"transition.{observation.name}")
            rows: list[NewNotification] = []
            if self._outbox is not None and changes:
                rows = self._outbox(current, replace(current, **changes), now)
            stored = apply(
                current,
                changes,
                event,
                now,
                token_hash=transition.token_hash if transition else None,
                release_owner=release_owner,
                sample=transition.learned if transition else None,
                outbox=rows,
            )
        return transition, stored

    def _fold(
        self, current: Job, observation: Observation, now: datetime, raw: Any, note: str
    ) -> tuple[Transition | None, dict[str, Any] | None, NewEvent]:
        transition = decide(current, observation, now, self.policy)
        changes = transition.changes_for(current, now) if transition else None
        changes = _count(current, changes, observation)
        payload = observation.payload()
        if raw is not None:
            payload["raw"] = raw
        event = NewEvent(
            source=observation.source,
            type=observation.name,
            payload=payload,
            note=note or (transition.note if transition else ignored_note(current, observation)),
        )
        return transition, changes, event

    def record(
        self,
        job: Job,
        *,
        source: str,
        type: str,
        payload: dict[str, Any],
        note: str,
        now: datetime,
    ) -> Job:
        """Append an event that changes nothing (a refused callback, say), race-safe."""
        current = job
        for _ in range(MAX_RACES):
            try:
                return self.store.apply(
                    current,
                    None,
                    NewEvent(source=source, type=type, payload=payload, note=note),
                    now,
                )
            except StaleJob:
                current = self.store.get_job(current.id)
        raise StoreError(f"job {job.key}: gave up after {MAX_RACES} lost compare-and-sets")

    def _report(self, outcome: Outcome, observation: Observation) -> None:
        job = outcome.job
        if outcome.changed_state:
            log.info(
                "job_transitioned",
                key=job.key,
                kind=job.kind,
                from_state=outcome.from_state.value,
                to_state=job.state.value,
                source=observation.source,
                observation=observation.name,
                task_id=job.task_id,
                note=outcome.transition.note if outcome.transition else "",
            )
        elif outcome.transition is None:
            log.debug(
                "observation_ignored",
                key=job.key,
                state=job.state.value,
                source=observation.source,
                observation=observation.name,
            )
        if outcome.transition is not None and outcome.transition.wake_poller and self._on_wake:
            self._on_wake(job.id)
        if self._on_transition is not None and outcome.transition is not None:
            self._on_transition(outcome)


@contextmanager
def _deterministic_failures(job: Job, observation: Observation) -> Iterator[None]:
    """Anything but a database failure while folding or storing one observation (data the
    store cannot hold, a bug in a rule) becomes :class:`ObservationError`: retrying the same
    observation would fail the same way. Errors of our own tree pass unchanged."""
    try:
        yield
    except OrchestratorError:
        raise  # a database failure, a lost race, a missing job: the caller's to handle
    except Exception as exc:
        log.error(
            "observation_failed",
            key=job.key,
            observation=observation.name,
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
        raise ObservationError(
            f"{observation.name} for job {job.key!r} cannot be recorded: {type(exc).__name__}"
        ) from exc


def _count(
    current: Job, changes: dict[str, Any] | None, observation: Observation
) -> dict[str, Any] | None:
    """Polls and callbacks are counted whether or not they changed anything."""
    if isinstance(observation, (Polled, PollFailed)):
        return {**(changes or {}), "polls": current.polls + 1}
    if isinstance(observation, CallbackReceived):
        return {**(changes or {}), "callbacks": current.callbacks + 1}
    return changes
