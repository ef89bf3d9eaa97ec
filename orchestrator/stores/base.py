"""The store interface, shaped by what the daemon and the operator do.

Contract (every implementation, checked by tests/integration/store/test_store_contract.py
against SQLite and PostgreSQL):

* Jobs are read as frozen :class:`orchestrator.domain.Job` records, artifacts included.
* Every change to a job is a compare-and-set on ``Job.version`` written in ONE transaction
  with its event row (:meth:`Store.apply`). Zero rows matched raises :class:`StaleJob`.
* Leases give one owner at a time: a claimed job is not handed to another owner until its
  lease expires or is released. A claim bumps ``version``, so a worker whose lease expired and
  was taken over loses its next :meth:`Store.apply` (fencing).
* All datetimes in and out are timezone-aware UTC. ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from orchestrator.domain import (
    Event,
    Job,
    NewEvent,
    NewJob,
    NewNotification,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from orchestrator.durations import DurationSample
from orchestrator.states import JobState
from orchestrator.stores.wakes import PostgresWakes

T = TypeVar("T")


@dataclass(frozen=True)
class TokenOwner:
    """Whom a callback token belongs to: a job, and the submit attempt it was issued for."""

    job: Job
    attempt: int


@dataclass(frozen=True)
class Claim:
    """Which queue a claim draws from."""

    name: str


SUBMIT = Claim("submit")  #: queued jobs whose not_before <= now
POLL = Claim("poll")  #: jobs in a pollable state whose next_poll_at <= now
DOWNLOAD = Claim("download")  #: succeeded jobs with a pending artifact whose next_attempt_at <= now
DEADLINE = Claim("deadline")  #: pending/running jobs whose deadline_at <= now
STALE_SUBMIT = Claim("stale_submit")  #: submitting jobs whose lease expired (worker died)
UNCERTAIN = Claim("uncertain")  #: uncertain jobs whose state_since <= now - grace (see claim)


class UnitOfWork(Protocol):
    """One write transaction for several observations (group commit): reads see its writes."""

    def get_job(self, job_id: int) -> Job:
        """The job as of this transaction; :class:`JobIdNotFound` if there is none."""
        ...

    def get_jobs(self, job_ids: Sequence[int]) -> dict[int, Job]:
        """The jobs as of this transaction, by id, in one read (ids with no job are left
        out): a batch reads its jobs at once instead of one round trip each."""
        ...

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
        """As :meth:`Store.apply`, inside this transaction (nothing is durable until it ends)."""
        ...


class Store(Protocol):
    #: who writes through this store (the daemon's id, set at start), recorded with each event
    node: str | None

    def database_now(self) -> datetime | None:
        """The database server's clock (PostgreSQL), or None where the host's clock is the
        one (SQLite, memory)."""
        ...

    def wakes(self, node: str) -> PostgresWakes | None:
        """The channel to wake the other daemons on this database through (PostgreSQL:
        LISTEN/NOTIFY), or None where one host is all there is (SQLite, memory)."""
        ...

    def create_job(self, new: NewJob, now: datetime) -> tuple[Job, bool]:
        """Record a job in `queued`, with a `created` event; idempotent by key.

        Returns (job, created). The same key with the same kind and params returns the
        existing job and ``False``; with a different kind or params raises
        :class:`JobKeyConflict`. Safe against two concurrent creators of one key.
        """
        ...

    def get_job(self, job_id: int) -> Job:
        """The job by id; :class:`JobIdNotFound` if there is none."""
        ...

    def get_job_by_key(self, key: str) -> Job:
        """The job by key; :class:`JobNotFound` if there is none."""
        ...

    def list_jobs(
        self,
        *,
        states: Sequence[JobState] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs ordered by creation (oldest first), optionally filtered."""
        ...

    def count_by_state(self) -> dict[JobState, int]:
        """How many jobs are in each state (states with none are absent)."""
        ...

    def count_by_state_and_kind(self) -> list[tuple[JobState, str, int]]:
        """How many jobs of each kind are in each state (none: absent), for the metrics."""
        ...

    def events(self, job_id: int, *, limit: int | None = None) -> list[Event]:
        """The job's event log, oldest first (the last ``limit`` when given)."""
        ...

    def recent_events(self, since: datetime, *, limit: int) -> list[Event]:
        """Every job's events at or after ``since``, the newest ``limit``, oldest first (for
        `orchestrator top`)."""
        ...

    def transitions(self, after_id: int, *, limit: int) -> list[Event]:
        """Events that changed a job's state, of every job, with ids above ``after_id``, oldest
        first (at most ``limit``): the feed behind ``Orchestrator.events``."""
        ...

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
        """Write ``event`` and, when ``changes`` are given, those fields of the job, in one
        transaction.

        ``changes`` maps Job field names to their new values: a transition's changes plus the
        state and timestamps the reconciler adds. Only those fields are written (the store
        does not diff two jobs); id, key, created_at and version never change (ValueError),
        artifact names must be unique (ValueError). The job row is written only if its version
        is still ``job.version`` (compare-and-set), and gets ``job.version + 1``; otherwise
        :class:`StaleJob` is raised and nothing is written. Artifact rows are made to match
        ``changes["artifacts"]`` when given (upsert by name). ``token_hash`` (with a
        submit_started transition) is recorded for callback lookup, labelled with the job's
        attempt after the changes. ``release_owner`` clears the lease if that owner holds it.
        ``sample`` (a success's learned durations) joins the durations history in the same
        transaction, and so do the ``outbox`` rows (the notifications it causes): nothing is
        told of a change that did not commit, and nothing committed goes untold.
        With ``changes=None`` the event is still appended (a duplicate or stale observation;
        its ``to_state`` is None) and the version is still checked and bumped, so an
        observation cannot slip past a concurrent change. Returns the job as stored."""
        ...

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """A write transaction in which several jobs are read, decided and applied; it
        commits once on exit (one fsync for the lot) or rolls back on an exception."""
        ...

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
        """Lease up to ``limit`` due jobs of one queue to ``owner`` until now + lease_s.

        Due order: the earliest due time first. Jobs leased to someone else (lease not yet
        expired) are skipped (PostgreSQL: ``FOR UPDATE SKIP LOCKED``). ``older_than`` is the
        cut-off for :data:`UNCERTAIN` (state_since <= older_than). Each claimed job's version
        is bumped.
        """
        ...

    def claim_job(self, job_id: int, owner: str, now: datetime, lease_s: float) -> Job | None:
        """Lease one specific job (a callback woke it), or None if someone else holds it."""
        ...

    def release(self, job_id: int, owner: str) -> None:
        """Give up a lease held by ``owner`` (no-op if it is not the holder)."""
        ...

    def release_all(self, owner: str) -> int:
        """Give up every lease ``owner`` holds (graceful shutdown). Returns how many."""
        ...

    def durations(self, limit_per_group: int) -> list[DurationSample]:
        """The newest ``limit_per_group`` learned samples of each (kind, model), newest
        first within a group (the store keeps at most :data:`KEPT_PER_GROUP` of each)."""
        ...

    def account(self, name: str) -> dict[str, Any] | None:
        """The provider account's record ``name`` (JSON), or None if never written."""
        ...

    def set_account(self, name: str, value: Mapping[str, Any], now: datetime) -> None:
        """Write the account record ``name`` (replacing it), durably."""
        ...

    def update_account(
        self,
        name: str,
        change: Callable[[dict[str, Any] | None, datetime], tuple[dict[str, Any], T]],
        clock: Callable[[], datetime],
    ) -> T:
        """Read, change and write the account record ``name`` atomically: no other writer of
        it (thread, process, daemon) runs in between (PostgreSQL: the row ``FOR UPDATE``;
        SQLite: the write lock). ``change`` gets the value (None: none yet) and the time, read
        from ``clock`` once the lock is held, and returns the new value and what to return.
        The cluster-wide limits are built on this: a time read before the lock could be older
        than a time another writer stored meanwhile, and a window would count it too early."""
        ...

    # --- the outbox (orchestrator.notifications) ---------------------------------------------

    def add_notifications(
        self, rows: Sequence[NewNotification], now: datetime, job_id: int | None = None
    ) -> None:
        """Write outbox rows outside a transition (a ping)."""
        ...

    def claim_notifications(
        self, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[Notification]:
        """Lease up to ``limit`` pending rows due at ``now``, the earliest first; rows leased
        to someone else are skipped (PostgreSQL: ``SKIP LOCKED``)."""
        ...

    def finish_notification(
        self,
        notification_id: int,
        owner: str,
        attempt: NotificationAttempt | None,
        state: NotificationState,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Record ``attempt`` (None: the row was skipped, no attempt made) and the row's next
        state, releasing the lease; False (nothing written) when ``owner`` no longer holds
        it."""
        ...

    def notifications(
        self,
        *,
        states: Sequence[NotificationState] | None = None,
        job_id: int | None = None,
        since: datetime | None = None,
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        """Outbox rows, oldest first, optionally filtered (``since``: created at or after)."""
        ...

    def notification_attempts(self, notification_id: int) -> list[NotificationAttempt]:
        """Every attempt of one row, oldest first."""
        ...

    def replay_notifications(self, ids: Sequence[int], now: datetime) -> int:
        """Make those rows pending again, due now, with a fresh schedule (the same
        webhook-id: the receiver's idempotency key). Returns how many."""
        ...

    def replay_known(self, key: str, now: datetime) -> bool:
        """Whether a signed callback with this replay key was accepted and has not expired."""
        ...

    def remember_replay(self, key: str, expires_at: datetime, now: datetime) -> None:
        """Remember an accepted signed callback until ``expires_at`` (a second time: no-op);
        forgets expired ones."""
        ...

    def find_by_token(self, token_hash: str) -> TokenOwner | None:
        """The job a callback token hash belongs to and the attempt it was issued for (any
        attempt's token, current or superseded), or None."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
