"""The SQL store: one implementation of :class:`orchestrator.stores.base.Store` for SQLite and
PostgreSQL, on SQLAlchemy Core over the SQLModel tables in :mod:`orchestrator.stores.tables`.

* Every write is one transaction. On SQLite it begins with ``BEGIN IMMEDIATE`` (see
  :mod:`orchestrator.stores.sqlite`), so concurrent writers wait instead of failing with
  "database is locked"; on PostgreSQL claims lock their rows with
  ``SELECT ... FOR UPDATE SKIP LOCKED``.
* :meth:`SQLStore.apply` is a compare-and-set on ``jobs.version`` plus the event row, the
  artifact upserts and the optional callback token, in one transaction; it writes only the
  columns that changed.
* Claims are index range scans ordered by the queue's due column, limited, and lease the rows
  with one ``UPDATE ... RETURNING``; artifacts for all returned jobs are loaded with one
  query (in chunks), never one per job.
* Foreign errors are translated here: anything SQLAlchemy raises becomes
  :class:`StoreError` (``raise ... from exc``).

Its neighbours own one concern each: :mod:`.tables` (the schema as declared),
:mod:`.schema` (creating and upgrading it), :mod:`.rows` (rows <-> records, derived from the
domain records' fields), :mod:`.queries` (due and lease predicates), :mod:`.writes` (the
compare-and-set with its event row), :mod:`.records` (what every backend shares),
:mod:`.sqlite` and :mod:`.postgres` (one module per dialect).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from orchestrator.clock import ensure_utc
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
from orchestrator.durations import DurationSample, newest_per_group
from orchestrator.exceptions import (
    JobIdNotFound,
    JobNotFound,
    StoreError,
)
from orchestrator.states import JobState
from orchestrator.stores import outbox as outbox_sql
from orchestrator.stores.base import (
    Claim,
    T,
    TokenOwner,
    UnitOfWork,
)
from orchestrator.stores.engines import describe as _describe
from orchestrator.stores.engines import open_database
from orchestrator.stores.queries import POLLABLE_VALUES, due_query, lease_free
from orchestrator.stores.records import (
    CREATED_SOURCE,
    created_payload,
    dumps,
    new_job_record,
    same_job,
)
from orchestrator.stores.rows import (
    chunks,
    event_from_row,
    job_from_row,
    job_values,
    jobs_with_artifacts,
    load_artifacts,
    sample_from_row,
)
from orchestrator.stores.schema import open_schema
from orchestrator.stores.tables import (
    ACCOUNT,
    ARTIFACTS,
    CALLBACK_TOKENS,
    DURATIONS,
    EVENTS,
    JOBS,
    NOTIFICATION_ATTEMPTS,
    NOTIFICATIONS,
    REPLAY_MEMORY,
)
from orchestrator.stores.wakes import PostgresWakes
from orchestrator.stores.writes import apply_on

__all__ = ["SQLStore"]

J = JOBS.c
A = ARTIFACTS.c


class SQLStore:
    """A :class:`~orchestrator.stores.base.Store` on SQLite (file) or PostgreSQL (psycopg 3).

    ``busy_timeout_s`` bounds how long a SQLite writer waits for the write lock.
    ``schema`` (PostgreSQL only) puts the tables in that schema (created if missing) through
    the connections' ``search_path``: used to isolate tests sharing one database.
    """

    def __init__(
        self, url: str, *, busy_timeout_s: float = 30.0, schema: str | None = None
    ) -> None:
        #: who writes through this store (the daemon sets its id), recorded with each event
        self.node: str | None = None
        database = open_database(url, busy_timeout_s=busy_timeout_s, schema=schema)
        self._url, self._schema = url, schema
        self._engine: Engine = database.engine
        self._postgres = database.postgres
        self._read_options: dict[str, Any] = database.read_options
        #: SQLite has one writer at a time. Writers of this process queue here, where a
        #: released lock hands over at once, instead of in SQLite's busy handler, which naps
        #: 1, 2, 5, 10... ms between tries: under 8 callback threads that napping was most of
        #: a callback's time (py-spy, docs/performance.md). Other processes still meet the
        #: busy timeout. PostgreSQL has row locks and needs none of this.
        self._write_lock: threading.Lock | contextlib.nullcontext[None] = (
            contextlib.nullcontext() if self._postgres else threading.Lock()
        )
        #: "in a pollable state". Without statistics SQLite's planner would pick a state index
        #: for this term and sort every pollable job on each claim; likely() tells it the term
        #: is not selective, so it walks ix_jobs_next_poll_at in order and stops at the limit
        #: (measured: 12 ms -> 0.14 ms per claim with 10,000 jobs in flight).
        self._pollable: ColumnElement[bool] = J.state.in_(POLLABLE_VALUES)
        if not self._postgres:
            self._pollable = func.likely(self._pollable)
        try:
            with self._write() as conn:
                open_schema(conn, postgres=self._postgres, schema=schema)
        except BaseException:
            self._engine.dispose()
            raise

    # --- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); SQLAlchemy errors → StoreError."""
        try:
            with self._write_lock, self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise _KeyTaken(f"database write failed: {_describe(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database write failed: {_describe(exc)}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One read-only transaction (SQLite: BEGIN DEFERRED; PostgreSQL: one snapshot)."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**self._read_options)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database read failed: {_describe(exc)}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- jobs ---------------------------------------------------------------------------

    def database_now(self) -> datetime | None:
        if not self._postgres:
            return None
        with self._read() as conn:
            value = conn.scalar(select(func.now()))
        return ensure_utc(value) if isinstance(value, datetime) else None

    def wakes(self, node: str) -> PostgresWakes | None:
        if not self._postgres:
            return None
        return PostgresWakes(self._url, node, schema=self._schema)

    def create_job(self, new: NewJob, now: datetime) -> tuple[Job, bool]:
        now = ensure_utc(now)
        existing = self._find_job(J.key == new.key)
        if existing is not None:
            return same_job(existing, new), False
        job = new_job_record(new, 0, now)
        values = job_values(job)
        try:
            # the same write path as every other write (SQLite: the writer lock, BEGIN
            # IMMEDIATE); a key taken meanwhile surfaces as _KeyTaken
            with self._write() as conn:
                result = conn.execute(insert(JOBS).values(values))
                inserted = result.inserted_primary_key
                assert inserted is not None
                job_id = int(inserted[0])
                conn.execute(
                    insert(EVENTS).values(
                        job_id=job_id,
                        at=now,
                        source=CREATED_SOURCE,
                        type="created",
                        from_state=None,
                        to_state=job.state.value,
                        payload=dumps(created_payload(job)),
                        note="",
                        node=self.node,
                    )
                )
        except _KeyTaken as exc:
            # a concurrent creator of the same key won the race
            existing = self._find_job(J.key == new.key)
            if existing is None:
                raise StoreError(f"cannot record job {new.key!r}: {exc}") from exc
            return same_job(existing, new), False
        return replace(job, id=job_id), True

    def get_job(self, job_id: int) -> Job:
        job = self._find_job(J.id == job_id)
        if job is None:
            raise JobIdNotFound(job_id)
        return job

    def get_job_by_key(self, key: str) -> Job:
        job = self._find_job(J.key == key)
        if job is None:
            raise JobNotFound(key)
        return job

    def _find_job(self, where: ColumnElement[bool]) -> Job | None:
        with self._read() as conn:
            return self._find_job_on(conn, where)

    def _find_job_on(self, conn: Connection, where: ColumnElement[bool]) -> Job | None:
        row = conn.execute(select(JOBS).where(where)).mappings().first()
        if row is None:
            return None
        return job_from_row(row, load_artifacts(conn, [row["id"]]).get(row["id"], ()))

    def list_jobs(
        self,
        *,
        states: Sequence[JobState] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        query = select(JOBS).order_by(J.created_at, J.id)
        if states is not None:
            query = query.where(J.state.in_([JobState(s).value for s in states]))
        if kind is not None:
            query = query.where(J.kind == kind)
        if limit is not None:
            query = query.limit(max(0, limit))
        with self._read() as conn:
            return jobs_with_artifacts(conn, conn.execute(query).mappings().all())

    def count_by_state(self) -> dict[JobState, int]:
        query = select(J.state, func.count()).group_by(J.state)
        with self._read() as conn:
            return {JobState(state): int(n) for state, n in conn.execute(query).all()}

    def count_by_state_and_kind(self) -> list[tuple[JobState, str, int]]:
        query = select(J.state, J.kind, func.count()).group_by(J.state, J.kind)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return sorted((JobState(state), kind, int(n)) for state, kind, n in rows)

    def events(self, job_id: int, *, limit: int | None = None) -> list[Event]:
        query = select(EVENTS).where(EVENTS.c.job_id == job_id)
        if limit is None:
            query = query.order_by(EVENTS.c.id)
        else:
            query = query.order_by(EVENTS.c.id.desc()).limit(max(0, limit))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        found = [event_from_row(row) for row in rows]
        return found if limit is None else found[::-1]

    def recent_events(self, since: datetime, *, limit: int) -> list[Event]:
        E = EVENTS.c
        query = (
            select(EVENTS)
            .where(E.at >= ensure_utc(since))
            .order_by(E.id.desc())
            .limit(max(0, limit))
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [event_from_row(row) for row in reversed(rows)]

    def transitions(self, after_id: int, *, limit: int) -> list[Event]:
        E = EVENTS.c
        changed = or_(E.from_state.is_(None), E.to_state != E.from_state)  # created, or moved
        moved = and_(E.id > after_id, E.to_state.is_not(None), changed)
        query = select(EVENTS).where(moved).order_by(E.id).limit(max(0, limit))
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(query).mappings()]

    def replay_known(self, key: str, now: datetime) -> bool:
        R = REPLAY_MEMORY.c
        query = select(R.key).where(R.key == key, R.expires_at >= ensure_utc(now))
        with self._read() as conn:
            return conn.scalar(query) is not None

    def remember_replay(self, key: str, expires_at: datetime, now: datetime) -> None:
        R = REPLAY_MEMORY.c
        with self._write() as conn:
            conn.execute(delete(REPLAY_MEMORY).where(R.expires_at < ensure_utc(now)))
            if conn.scalar(select(R.key).where(R.key == key)) is None:
                conn.execute(
                    insert(REPLAY_MEMORY).values(key=key, expires_at=ensure_utc(expires_at))
                )

    def find_by_token(self, token_hash: str) -> TokenOwner | None:
        attempt = CALLBACK_TOKENS.c.attempt.label("token_attempt")
        query = (
            select(JOBS, attempt)
            .join(CALLBACK_TOKENS, CALLBACK_TOKENS.c.job_id == J.id)
            .where(CALLBACK_TOKENS.c.token_hash == token_hash)
        )
        with self._read() as conn:  # one indexed join, as on every callback's hot path
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            job = job_from_row(row, load_artifacts(conn, [row["id"]]).get(row["id"], ()))
            return TokenOwner(job, int(row["token_attempt"]))

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
        with self.unit_of_work() as unit:  # one write transaction, the unit's one apply
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
        with self._read() as conn:
            rows = conn.execute(select(DURATIONS).order_by(DURATIONS.c.id.desc())).mappings()
            return newest_per_group((sample_from_row(row) for row in rows), limit_per_group)

    # --- the outbox --------------------------------------------------------------------------

    def add_notifications(
        self, rows: Sequence[NewNotification], now: datetime, job_id: int | None = None
    ) -> None:
        with self._write() as conn:
            outbox_sql.insert_rows(conn, rows, job_id, now)

    def claim_notifications(
        self, owner: str, now: datetime, lease_s: float, limit: int
    ) -> list[Notification]:
        if limit <= 0:
            return []
        now = ensure_utc(now)
        with self._write() as conn:
            ids = outbox_sql.due_ids(conn, now, limit, postgres=self._postgres)
            return outbox_sql.lease(conn, ids, owner, now, lease_s) if ids else []

    def finish_notification(
        self,
        notification_id: int,
        owner: str,
        attempt: NotificationAttempt | None,
        state: NotificationState,
        next_attempt_at: datetime | None,
    ) -> bool:
        with self._write() as conn:
            return outbox_sql.finish(conn, notification_id, owner, attempt, state, next_attempt_at)

    def notifications(
        self,
        *,
        states: Sequence[NotificationState] | None = None,
        job_id: int | None = None,
        since: datetime | None = None,
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        N = NOTIFICATIONS.c
        query = select(NOTIFICATIONS).order_by(N.id)
        if states is not None:
            query = query.where(N.state.in_([s.value for s in states]))
        if job_id is not None:
            query = query.where(N.job_id == job_id)
        if since is not None:
            query = query.where(N.created_at >= ensure_utc(since))
        if ids is not None:
            query = query.where(N.id.in_(list(ids)))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [outbox_sql.from_row(row) for row in conn.execute(query).mappings()]

    def notification_attempts(self, notification_id: int) -> list[NotificationAttempt]:
        NA = NOTIFICATION_ATTEMPTS.c
        query = select(NOTIFICATION_ATTEMPTS).where(NA.notification_id == notification_id)
        with self._read() as conn:
            return [
                NotificationAttempt(r["at"], r["status"], r["error"], r["duration_s"])
                for r in conn.execute(query.order_by(NA.id)).mappings()
            ]

    def replay_notifications(self, ids: Sequence[int], now: datetime) -> int:
        if not ids:
            return 0
        N = NOTIFICATIONS.c
        values = {
            "state": NotificationState.PENDING.value,
            "next_attempt_at": ensure_utc(now),
            "attempts": 0,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        with self._write() as conn:
            result = conn.execute(update(NOTIFICATIONS).where(N.id.in_(list(ids))).values(values))
            return int(result.rowcount)

    def account(self, name: str) -> dict[str, Any] | None:
        with self._read() as conn:
            text = conn.scalar(select(ACCOUNT.c.value).where(ACCOUNT.c.name == name))
        return None if text is None else dict(json.loads(text))

    def update_account(
        self,
        name: str,
        change: Callable[[dict[str, Any] | None, datetime], tuple[dict[str, Any], T]],
        clock: Callable[[], datetime],
    ) -> T:
        with self._write() as conn:  # SQLite: BEGIN IMMEDIATE holds the write lock from here
            query = select(ACCOUNT.c.value).where(ACCOUNT.c.name == name)
            if self._postgres:
                # make the row exist, then lock it: concurrent daemons take turns here
                conn.execute(
                    postgresql_insert(ACCOUNT)
                    .values(name=name, value="null", updated_at=ensure_utc(clock()))
                    .on_conflict_do_nothing(index_elements=[ACCOUNT.c.name])
                )
                query = query.with_for_update()
            text = conn.scalar(query)
            stamp = ensure_utc(clock())  # under the lock: no other writer is in between
            current = json.loads(text) if text is not None else None
            value, result = change(current if isinstance(current, dict) else None, stamp)
            values = {"value": dumps(value), "updated_at": stamp}
            if text is None:
                conn.execute(insert(ACCOUNT).values(name=name, **values))
            else:
                conn.execute(update(ACCOUNT).where(ACCOUNT.c.name == name).values(values))
            return result

    def set_account(self, name: str, value: Mapping[str, Any], now: datetime) -> None:
        values = {"value": dumps(dict(value)), "updated_at": ensure_utc(now)}
        with self._write() as conn:
            changed = conn.execute(update(ACCOUNT).where(ACCOUNT.c.name == name).values(values))
            if changed.rowcount == 0:
                conn.execute(insert(ACCOUNT).values(name=name, **values))

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One write transaction for several read-decide-apply steps (group commit)."""
        with self._write() as conn:
            yield _SQLUnit(self, conn)

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
        query = due_query(which, now, older_than, self._pollable).limit(limit)
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=JOBS)
        with self._write() as conn:
            ids = list(conn.scalars(query))
            if not ids:
                return []
            rows = self._lease(conn, J.id.in_(ids), owner, now, lease_s)
            jobs = jobs_with_artifacts(conn, rows)
        position = {job_id: i for i, job_id in enumerate(ids)}
        return sorted(jobs, key=lambda job: position[job.id])

    def claim_job(self, job_id: int, owner: str, now: datetime, lease_s: float) -> Job | None:
        now = ensure_utc(now)
        takeable = and_(J.id == job_id, or_(lease_free(now), J.lease_owner == owner))
        with self._write() as conn:
            rows = self._lease(conn, takeable, owner, now, lease_s)
            if not rows:
                if conn.scalar(select(J.id).where(J.id == job_id)) is None:
                    raise JobIdNotFound(job_id)
                return None
            return jobs_with_artifacts(conn, rows)[0]

    def _lease(
        self,
        conn: Connection,
        where: ColumnElement[bool],
        owner: str,
        now: datetime,
        lease_s: float,
    ) -> Sequence[RowMapping]:
        stmt = (
            update(JOBS)
            .where(where)
            .values(
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
                version=J.version + 1,
            )
        )
        if conn.dialect.update_returning:
            return conn.execute(stmt.returning(*JOBS.c)).mappings().all()
        # SQLite before 3.35: no RETURNING; the write lock is held, so re-reading is exact
        conn.execute(stmt)
        leased = and_(where, J.lease_owner == owner)
        return conn.execute(select(JOBS).where(leased)).mappings().all()

    def release(self, job_id: int, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(JOBS)
                .where(J.id == job_id, J.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def release_all(self, owner: str) -> int:
        with self._write() as conn:
            result = conn.execute(
                update(JOBS)
                .where(J.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return int(result.rowcount)


# --- queries --------------------------------------------------------------------------------


class _KeyTaken(StoreError):
    """A write broke a unique constraint (for create_job: the key was taken meanwhile)."""


class _SQLUnit:
    """A write transaction in progress: reads see its own writes; it commits as one."""

    def __init__(self, store: SQLStore, conn: Connection) -> None:
        self._store = store
        self._conn = conn

    def get_job(self, job_id: int) -> Job:
        job = self._store._find_job_on(self._conn, J.id == job_id)
        if job is None:
            raise JobIdNotFound(job_id)
        return job

    def get_jobs(self, job_ids: Sequence[int]) -> dict[int, Job]:
        rows: list[RowMapping] = []
        for chunk in chunks(sorted(set(job_ids))):
            rows += self._conn.execute(select(JOBS).where(J.id.in_(chunk))).mappings().all()
        return {job.id: job for job in jobs_with_artifacts(self._conn, rows)}

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
        return apply_on(
            self._conn,
            job,
            changes,
            event,
            now,
            token_hash=token_hash,
            release_owner=release_owner,
            sample=sample,
            outbox=outbox,
            postgres=self._store._postgres,
            node=self._store.node,
        )
