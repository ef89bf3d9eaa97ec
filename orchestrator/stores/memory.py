"""An in-memory :class:`~orchestrator.stores.base.Store`, for fast unit tests of one piece.

It keeps the whole contract (checked by the same suite as the SQL store): compare-and-set on
``Job.version`` with the event row in one step, leases with fencing, claims in due order,
idempotent creation by key, tokens with their attempt, and a unit of work that commits as
one or rolls back entirely. Values go through the same canonical JSON as the SQL store, so a
job reads back exactly as it would from a database. One lock serialises every call: it is
thread-safe, and as fast as a dict. Nothing survives the process: never use it for real work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.clock import ensure_utc
from orchestrator.domain import (
    Artifact,
    ArtifactState,
    Event,
    Job,
    NewEvent,
    NewJob,
    NewNotification,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from orchestrator.durations import KEPT_PER_GROUP, DurationSample, newest_per_group
from orchestrator.exceptions import JobIdNotFound, JobNotFound, StaleJob, StoreError
from orchestrator.states import POLLABLE, JobState
from orchestrator.stores.base import (
    DEADLINE,
    DOWNLOAD,
    POLL,
    STALE_SUBMIT,
    SUBMIT,
    UNCERTAIN,
    Claim,
    T,
    TokenOwner,
    UnitOfWork,
)
from orchestrator.stores.records import (
    CREATED_SOURCE,
    changed_job,
    created_payload,
    dumps,
    in_utc,
    new_job_record,
    same_job,
)

__all__ = ["MemoryStore"]

_DEADLINE_STATES = (JobState.PENDING, JobState.RUNNING)


@dataclass
class _Lease:
    owner: str
    expires_at: datetime


@dataclass
class _State:
    """Everything the store holds; copied whole for a unit of work's rollback."""

    jobs: dict[int, Job]
    keys: dict[str, int]
    events: dict[int, list[Event]]
    tokens: dict[str, tuple[int, int]]
    leases: dict[int, _Lease]
    next_job_id: int = 1
    next_event_id: int = 1
    #: learned samples, oldest first
    durations: list[DurationSample] = field(default_factory=list)
    #: the provider account's records, as canonical JSON text
    account: dict[str, str] = field(default_factory=dict)
    #: the outbox: rows by id, their leases, their attempts
    outbox: dict[int, Notification] = field(default_factory=dict)
    outbox_leases: dict[int, _Lease] = field(default_factory=dict)
    attempts: dict[int, list[NotificationAttempt]] = field(default_factory=dict)
    next_notification_id: int = 1
    #: signed callbacks accepted: replay key -> until when
    replays: dict[str, datetime] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            dict(self.jobs),
            dict(self.keys),
            {job_id: list(events) for job_id, events in self.events.items()},
            dict(self.tokens),
            dict(self.leases),
            self.next_job_id,
            self.next_event_id,
            list(self.durations),
            dict(self.account),
            dict(self.outbox),
            dict(self.outbox_leases),
            {n: list(a) for n, a in self.attempts.items()},
            self.next_notification_id,
            dict(self.replays),
        )


def _roundtrip(value: Any) -> Any:
    """``value`` as it would read back from a JSON column."""
    return json.loads(dumps(value))


class MemoryStore:
    """A :class:`~orchestrator.stores.base.Store` in a dict (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State({}, {}, {}, {}, {})
        #: who writes through this store, recorded with each event
        self.node: str | None = None

    # --- jobs ---------------------------------------------------------------------------

    def database_now(self) -> datetime | None:
        return None

    def wakes(self, node: str) -> None:
        return None

    def create_job(self, new: NewJob, now: datetime) -> tuple[Job, bool]:
        now = ensure_utc(now)
        with self._lock:
            state = self._state
            existing = state.keys.get(new.key)
            if existing is not None:
                return same_job(state.jobs[existing], new), False
            job = new_job_record(new, state.next_job_id, now)
            state.next_job_id += 1
            state.jobs[job.id] = job
            state.keys[job.key] = job.id
            payload = created_payload(job)
            self._append(state, job.id, now, "created", None, job.state, payload, "")
            return job, True

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            return self._get(self._state, job_id)

    def get_job_by_key(self, key: str) -> Job:
        with self._lock:
            job_id = self._state.keys.get(key)
            if job_id is None:
                raise JobNotFound(key)
            return self._state.jobs[job_id]

    def list_jobs(
        self,
        *,
        states: Sequence[JobState] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        wanted = None if states is None else {JobState(s) for s in states}
        with self._lock:
            jobs = sorted(self._state.jobs.values(), key=lambda j: (j.created_at, j.id))
        found = [
            j
            for j in jobs
            if (wanted is None or j.state in wanted) and (kind is None or j.kind == kind)
        ]
        return found if limit is None else found[: max(0, limit)]

    def count_by_state(self) -> dict[JobState, int]:
        counts: dict[JobState, int] = {}
        with self._lock:
            for job in self._state.jobs.values():
                counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    def count_by_state_and_kind(self) -> list[tuple[JobState, str, int]]:
        counts: dict[tuple[JobState, str], int] = {}
        with self._lock:
            for job in self._state.jobs.values():
                counts[(job.state, job.kind)] = counts.get((job.state, job.kind), 0) + 1
        return sorted((state, kind, n) for (state, kind), n in counts.items())

    def events(self, job_id: int, *, limit: int | None = None) -> list[Event]:
        with self._lock:
            found = list(self._state.events.get(job_id, ()))
        return found if limit is None else found[len(found) - max(0, limit) :]

    def recent_events(self, since: datetime, *, limit: int) -> list[Event]:
        since = ensure_utc(since)
        with self._lock:
            every = [e for events in self._state.events.values() for e in events if e.at >= since]
        newest = sorted(every, key=lambda e: e.id)[-max(0, limit) :] if limit > 0 else []
        return newest

    def transitions(self, after_id: int, *, limit: int) -> list[Event]:
        with self._lock:
            every = [e for events in self._state.events.values() for e in events]
        moved = [
            e
            for e in every
            if e.id > after_id and e.to_state is not None and e.to_state != e.from_state
        ]
        return sorted(moved, key=lambda e: e.id)[: max(0, limit)]

    def replay_known(self, key: str, now: datetime) -> bool:
        with self._lock:
            until = self._state.replays.get(key)
        return until is not None and until >= ensure_utc(now)

    def remember_replay(self, key: str, expires_at: datetime, now: datetime) -> None:
        now = ensure_utc(now)
        with self._lock:
            replays = self._state.replays
            for old in [k for k, until in replays.items() if until < now]:
                del replays[old]
            replays.setdefault(key, ensure_utc(expires_at))

    def find_by_token(self, token_hash: str) -> TokenOwner | None:
        with self._lock:
            found = self._state.tokens.get(token_hash)
            if found is None:
                return None
            job_id, attempt = found
            return TokenOwner(self._state.jobs[job_id], attempt)

    # --- writes -------------------------------------------------------------------------

    def apply(
        self,
        job: Job,
        changes: Mapping[str, Any] | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None = None,
        release_owner: str | None = None,
        sample: DurationSample | None = None,
        outbox: Sequence[NewNotification] = (),
    ) -> Job:
        with self.unit_of_work() as unit:
            return unit.apply(
                job,
                changes,
                event,
                now,
                token_hash=token_hash,
                release_owner=release_owner,
                sample=sample,
                outbox=outbox,
            )

    def durations(self, limit_per_group: int) -> list[DurationSample]:
        with self._lock:
            newest = list(reversed(self._state.durations))
        return newest_per_group(newest, limit_per_group)

    # --- the outbox --------------------------------------------------------------------------

    @staticmethod
    def _add_outbox(
        state: _State, rows: Sequence[NewNotification], job_id: int | None, now: datetime
    ) -> None:
        for row in rows:
            if any(n.webhook_id == row.webhook_id for n in state.outbox.values()):
                raise StoreError(f"database write failed: webhook id {row.webhook_id} taken")
            number = state.next_notification_id
            state.next_notification_id += 1
            state.outbox[number] = Notification(
                id=number,
                webhook_id=row.webhook_id,
                target=row.target,
                event=row.event,
                job_id=job_id,
                body=_roundtrip(row.body),
                state=NotificationState.PENDING,
                attempts=0,
                next_attempt_at=ensure_utc(row.due_at),
                created_at=ensure_utc(now),
            )

    def add_notifications(
        self, rows: Sequence[NewNotification], now: datetime, job_id: int | None = None
    ) -> None:
        with self._lock:
            self._add_outbox(self._state, rows, job_id, now)

    def claim_notifications(
        self, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[Notification]:
        now = ensure_utc(now)
        with self._lock:
            state = self._state
            due = sorted(
                (
                    n
                    for n in state.outbox.values()
                    if n.state == NotificationState.PENDING
                    and n.next_attempt_at is not None
                    and n.next_attempt_at <= now
                    and (
                        (lease := state.outbox_leases.get(n.id)) is None or lease.expires_at <= now
                    )
                ),
                key=lambda n: (n.next_attempt_at or now, n.id),
            )[: max(0, limit)]
            for n in due:
                state.outbox_leases[n.id] = _Lease(owner, now + timedelta(seconds=lease_s))
            return due

    def finish_notification(
        self,
        notification_id: int,
        owner: str,
        attempt: NotificationAttempt | None,
        state: NotificationState,
        next_attempt_at: datetime | None,
    ) -> bool:
        with self._lock:
            store = self._state
            lease = store.outbox_leases.get(notification_id)
            if lease is None or lease.owner != owner:
                return False
            del store.outbox_leases[notification_id]
            row = store.outbox[notification_id]
            changes: dict[str, Any] = {
                "state": state,
                "next_attempt_at": ensure_utc(next_attempt_at) if next_attempt_at else None,
            }
            if attempt is not None:
                attempt = replace(attempt, at=ensure_utc(attempt.at))
                changes.update(
                    attempts=row.attempts + 1, last_status=attempt.status, last_error=attempt.error
                )
                if state == NotificationState.DELIVERED:
                    changes["delivered_at"] = attempt.at
                store.attempts.setdefault(notification_id, []).append(attempt)
            store.outbox[notification_id] = replace(row, **changes)
            return True

    def notifications(
        self,
        *,
        states: Sequence[NotificationState] | None = None,
        job_id: int | None = None,
        since: datetime | None = None,
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        with self._lock:
            rows = sorted(self._state.outbox.values(), key=lambda n: n.id)
        rows = [
            n
            for n in rows
            if (states is None or n.state in states)
            and (job_id is None or n.job_id == job_id)
            and (since is None or n.created_at >= ensure_utc(since))
            and (ids is None or n.id in ids)
        ]
        return rows if limit is None else rows[:limit]

    def notification_attempts(self, notification_id: int) -> list[NotificationAttempt]:
        with self._lock:
            return list(self._state.attempts.get(notification_id, ()))

    def replay_notifications(self, ids: Sequence[int], now: datetime) -> int:
        count = 0
        with self._lock:
            for number in ids:
                row = self._state.outbox.get(number)
                if row is None:
                    continue
                self._state.outbox[number] = replace(
                    row,
                    state=NotificationState.PENDING,
                    next_attempt_at=ensure_utc(now),
                    attempts=0,
                )
                self._state.outbox_leases.pop(number, None)
                count += 1
        return count

    def account(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._state.account.get(name)
        return None if text is None else dict(json.loads(text))

    def update_account(
        self,
        name: str,
        change: Callable[[dict[str, Any] | None, datetime], tuple[dict[str, Any], T]],
        clock: Callable[[], datetime],
    ) -> T:
        with self._lock:
            text = self._state.account.get(name)
            value, result = change(None if text is None else dict(json.loads(text)), clock())
            self._state.account[name] = dumps(dict(value))
            return result

    def set_account(self, name: str, value: Mapping[str, Any], now: datetime) -> None:
        text = dumps(dict(value))
        with self._lock:
            self._state.account[name] = text

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self._lock:
            before = self._state.copy()
            try:
                yield _MemoryUnit(self)
            except BaseException:
                self._state = before
                raise

    def _apply_on(
        self,
        state: _State,
        job: Job,
        changes: Mapping[str, Any] | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None,
        release_owner: str | None,
        sample: DurationSample | None = None,
        outbox: Sequence[NewNotification] = (),
    ) -> Job:
        now = ensure_utc(now)
        current = self._get(state, job.id)
        updated = changed_job(job, changes)
        if current.version != job.version:
            raise StaleJob(
                f"job {job.key!r} changed since version {job.version}: reload and decide again"
            )
        if token_hash is not None and token_hash in state.tokens:
            raise StoreError(f"database write failed: token hash already recorded ({job.key})")
        stored = current
        if updated is not None:
            stored = self._as_stored(current, updated)
        stored = replace(stored, version=job.version + 1)
        state.jobs[job.id] = stored
        lease = state.leases.get(job.id)
        if release_owner is not None and lease is not None and lease.owner == release_owner:
            del state.leases[job.id]
        to_state = updated.state if updated is not None else None
        payload = _roundtrip(event.payload)
        self._append(
            state, job.id, now, event.type, job.state, to_state, payload, event.note, event.source
        )
        if token_hash is not None:
            state.tokens[token_hash] = (job.id, (updated or job).attempt)
        if sample is not None:
            group = [s for s in state.durations if (s.kind, s.model) == (sample.kind, sample.model)]
            if len(group) >= KEPT_PER_GROUP:
                state.durations.remove(group[0])
            state.durations.append(replace(sample, recorded_at=ensure_utc(sample.recorded_at)))
        self._add_outbox(state, outbox, job.id, now)
        return in_utc(replace(updated if updated is not None else job, version=job.version + 1))

    @staticmethod
    def _as_stored(current: Job, updated: Job) -> Job:
        """``updated`` as the database would hold it: id, key and creation never change,
        JSON values round-trip, artifacts keep the order they were first recorded in."""
        order = [a.name for a in current.artifacts]
        by_name = {a.name: a for a in updated.artifacts}
        artifacts = [by_name[n] for n in order if n in by_name]
        artifacts += [a for a in updated.artifacts if a.name not in order]
        return in_utc(
            replace(
                updated,
                key=current.key,
                created_at=current.created_at,
                params=_roundtrip(updated.params),
                result=None if updated.result is None else _roundtrip(updated.result),
                artifacts=tuple(_stored_artifact(a) for a in artifacts),
            )
        )

    def _append(
        self,
        state: _State,
        job_id: int,
        at: datetime,
        type: str,
        from_state: JobState | None,
        to_state: JobState | None,
        payload: dict[str, Any],
        note: str,
        source: str = CREATED_SOURCE,
    ) -> None:
        event = Event(
            id=state.next_event_id,
            job_id=job_id,
            at=ensure_utc(at),
            source=source,
            type=type,
            from_state=from_state,
            to_state=to_state,
            payload=payload,
            note=note,
            node=self.node,
        )
        state.next_event_id += 1
        state.events.setdefault(job_id, []).append(event)

    @staticmethod
    def _get(state: _State, job_id: int) -> Job:
        job = state.jobs.get(job_id)
        if job is None:
            raise JobIdNotFound(job_id)
        return job

    # --- leases -------------------------------------------------------------------------

    def claim(
        self,
        which: Claim,
        owner: str,
        now: datetime,
        lease_s: float,
        limit: int,
        *,
        older_than: datetime | None = None,
    ) -> list[Job]:
        if limit <= 0:
            return []
        now = ensure_utc(now)
        if which == UNCERTAIN and older_than is None:
            raise ValueError("claiming UNCERTAIN jobs needs older_than (now - grace)")
        with self._lock:
            state = self._state
            due = []
            for job in state.jobs.values():
                if not self._free(state, job.id, now):
                    continue
                lease = state.leases.get(job.id)
                order = _due(which, job, now, older_than, lease.expires_at if lease else None)
                if order is not None:
                    due.append((order, job.id))
            due.sort()
            return [self._lease(state, job_id, owner, now, lease_s) for _, job_id in due[:limit]]

    def claim_job(self, job_id: int, owner: str, now: datetime, lease_s: float) -> Job | None:
        now = ensure_utc(now)
        with self._lock:
            state = self._state
            self._get(state, job_id)
            lease = state.leases.get(job_id)
            if not self._free(state, job_id, now) and (lease is None or lease.owner != owner):
                return None
            return self._lease(state, job_id, owner, now, lease_s)

    def release(self, job_id: int, owner: str) -> None:
        with self._lock:
            lease = self._state.leases.get(job_id)
            if lease is not None and lease.owner == owner:
                del self._state.leases[job_id]

    def release_all(self, owner: str) -> int:
        with self._lock:
            mine = [job_id for job_id, lease in self._state.leases.items() if lease.owner == owner]
            for job_id in mine:
                del self._state.leases[job_id]
            return len(mine)

    def lease_of(self, job_id: int) -> tuple[str, datetime] | None:
        """Who holds the job's lease and until when (for tests)."""
        with self._lock:
            lease = self._state.leases.get(job_id)
            return None if lease is None else (lease.owner, lease.expires_at)

    @staticmethod
    def _free(state: _State, job_id: int, now: datetime) -> bool:
        lease = state.leases.get(job_id)
        return lease is None or lease.expires_at <= now

    @staticmethod
    def _lease(state: _State, job_id: int, owner: str, now: datetime, lease_s: float) -> Job:
        state.leases[job_id] = _Lease(owner, now + timedelta(seconds=lease_s))
        job = state.jobs[job_id]
        leased = replace(job, version=job.version + 1)  # fencing: the old holder loses its CAS
        state.jobs[job_id] = leased
        return leased

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stored_artifact(artifact: Artifact) -> Artifact:
    return replace(artifact, state=ArtifactState(artifact.state))


def _due(
    which: Claim,
    job: Job,
    now: datetime,
    older_than: datetime | None,
    lease_expires_at: datetime | None,
) -> tuple[Any, ...] | None:
    """The job's place in queue ``which`` (smaller first), or None if it is not due there.

    The same predicates and order as the SQL store's due queries.
    """
    if which == SUBMIT:
        if job.state == JobState.QUEUED and (job.not_before is None or job.not_before <= now):
            return (job.not_before is not None, job.not_before or now, job.id)
        return None
    if which == POLL:
        if job.state in POLLABLE and job.next_poll_at is not None and job.next_poll_at <= now:
            return (job.next_poll_at, job.id)
        return None
    if which == DOWNLOAD:
        if job.state != JobState.SUCCEEDED:
            return None
        times = [
            a.next_attempt_at
            for a in job.artifacts
            if a.state == ArtifactState.PENDING
            and a.next_attempt_at is not None
            and a.next_attempt_at <= now
        ]
        return (min(times), job.id) if times else None
    if which == DEADLINE:
        if job.state in _DEADLINE_STATES and job.deadline_at is not None:
            return (job.deadline_at, job.id) if job.deadline_at <= now else None
        return None
    if which == STALE_SUBMIT:
        # a submitting job whose lease is free (expired, or none at all) is stale: no lease
        # first, then by when it expired
        if job.state != JobState.SUBMITTING:
            return None
        return (lease_expires_at is not None, lease_expires_at or now, job.id)
    if which == UNCERTAIN:
        assert older_than is not None
        since = job.state_since
        if job.state == JobState.UNCERTAIN and since is not None and since <= older_than:
            return (since, job.id)
        return None
    raise ValueError(f"unknown claim queue {which.name!r}")


class _MemoryUnit:
    """A unit of work in progress: the store's lock is held; its writes are visible at once
    and are undone together if the block fails."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def get_job(self, job_id: int) -> Job:
        return self._store._get(self._store._state, job_id)

    def get_jobs(self, job_ids: Sequence[int]) -> dict[int, Job]:
        jobs = (self._store._state.jobs.get(job_id) for job_id in set(job_ids))
        return {job.id: job for job in jobs if job is not None}

    def apply(
        self,
        job: Job,
        changes: Mapping[str, Any] | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None = None,
        release_owner: str | None = None,
        sample: DurationSample | None = None,
        outbox: Sequence[NewNotification] = (),
    ) -> Job:
        return self._store._apply_on(
            self._store._state,
            job,
            changes,
            event,
            now,
            token_hash=token_hash,
            release_owner=release_owner,
            sample=sample,
            outbox=outbox,
        )
