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
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    case,
    create_engine,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from orchestrator import faultpoints
from orchestrator.clock import ensure_utc
from orchestrator.domain import (
    Artifact,
    ArtifactState,
    Event,
    Job,
    JobError,
    NewEvent,
    NewJob,
)
from orchestrator.exceptions import (
    ConfigError,
    JobIdNotFound,
    JobNotFound,
    StaleJob,
    StoreError,
)
from orchestrator.states import POLLABLE, JobState
from orchestrator.stores.base import (
    DEADLINE,
    DOWNLOAD,
    POLL,
    STALE_SUBMIT,
    SUBMIT,
    UNCERTAIN,
    Claim,
    TokenOwner,
    UnitOfWork,
)
from orchestrator.stores.records import CREATED_SOURCE, canonical, dumps, in_utc, same_job
from orchestrator.stores.sqlite import READ_ONLY, SQLiteOpenError, create_sqlite_engine
from orchestrator.stores.tables import (
    ARTIFACTS,
    CALLBACK_TOKENS,
    EVENTS,
    JOBS,
    SCHEMA_META,
    SCHEMA_VERSION,
    TABLES,
)

__all__ = ["SQLStore"]

J = JOBS.c
A = ARTIFACTS.c


def _upgrade_1_to_2(conn: Connection) -> None:
    """Schema 2: attempts. ``jobs.attempt`` and ``callback_tokens.attempt`` are derived from
    the tokens already recorded (one per submit attempt, in time order), so a callback of an
    attempt that a `retry` superseded is told apart from the current one after the upgrade."""
    conn.execute(text("ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE callback_tokens ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0"))
    conn.execute(
        text(
            "UPDATE callback_tokens SET attempt = (SELECT count(*) FROM callback_tokens AS t"
            " WHERE t.job_id = callback_tokens.job_id"
            " AND (t.created_at < callback_tokens.created_at OR (t.created_at ="
            " callback_tokens.created_at AND t.token_hash <= callback_tokens.token_hash)))"
        )
    )
    conn.execute(
        text(
            "UPDATE jobs SET attempt = (SELECT count(*) FROM callback_tokens AS t"
            " WHERE t.job_id = jobs.id)"
        )
    )
    # a job that `retry` put back in `queued` was on its last token's attempt; move it on so
    # that token no longer counts (schema 1 reset submit_attempts to 0 on retry)
    conn.execute(
        text(
            "UPDATE jobs SET attempt = attempt + 1"
            " WHERE state = 'queued' AND submit_attempts = 0 AND attempt > 0"
        )
    )


#: Upgrade steps: ``_UPGRADES[n]`` migrates a version-n database to version n + 1.
_UPGRADES: dict[int, Callable[[Connection], None]] = {1: _upgrade_1_to_2}

#: Key of the PostgreSQL advisory lock that serialises schema creation across daemons.
_PG_SCHEMA_LOCK: Final = 0x6F726368  # "orch"

#: Ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK: Final = 500

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: Job columns :meth:`SQLStore.apply` may change (id, key and created_at never change; version
#: and the lease are the store's own).
_MUTABLE: Final = (
    "kind",
    "provider",
    "state",
    "params",
    "updated_at",
    "task_id",
    "result",
    "error",
    "polls",
    "callbacks",
    "submit_attempts",
    "attempt",
    "finished_at",
    "next_poll_at",
    "not_before",
    "deadline_at",
    "poll_failures",
    "hint",
    "hint_polls",
    "upstream_status",
    "state_since",
)

_POLLABLE_VALUES: Final = sorted(state.value for state in POLLABLE)
_DEADLINE_VALUES: Final = [JobState.PENDING.value, JobState.RUNNING.value]


class SQLStore:
    """A :class:`~orchestrator.stores.base.Store` on SQLite (file) or PostgreSQL (psycopg 3).

    ``busy_timeout_s`` bounds how long a SQLite writer waits for the write lock.
    ``schema`` (PostgreSQL only) puts the tables in that schema (created if missing) through
    the connections' ``search_path``: used to isolate tests sharing one database.
    """

    def __init__(
        self, url: str, *, busy_timeout_s: float = 30.0, schema: str | None = None
    ) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"not a database URL: {url!r}") from exc
        backend = parsed.get_backend_name()
        if schema is not None and (backend != "postgresql" or not _IDENTIFIER.match(schema)):
            raise ValueError(f"schema must be a plain identifier on PostgreSQL, got {schema!r}")
        self._postgres = backend == "postgresql"
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
        self._pollable: ColumnElement[bool] = J.state.in_(_POLLABLE_VALUES)
        if backend == "sqlite":
            self._pollable = func.likely(self._pollable)
        self._engine: Engine
        try:
            if backend == "sqlite":
                self._engine = create_sqlite_engine(parsed, busy_timeout_s=busy_timeout_s)
                self._read_options: dict[str, Any] = {READ_ONLY: True}
            elif self._postgres:
                connect_args: dict[str, Any] = {}
                if schema is not None:
                    connect_args["options"] = f"-c search_path={schema}"
                self._engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
                # several statements of one read see one snapshot
                self._read_options = {"isolation_level": "REPEATABLE READ"}
            else:
                raise ConfigError(
                    f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}:"
                    " use sqlite:///PATH or postgresql+psycopg://..."
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the database: {_describe(exc)}") from exc
        except SQLiteOpenError as exc:
            raise StoreError(f"cannot open the database: {exc}") from exc
        try:
            self._connect_once()
            self._init_schema(schema)
        except BaseException:
            self._engine.dispose()
            raise

    def _connect_once(self) -> None:
        """Open one connection, so that a database that cannot be opened at all (a path
        under /proc, a server that refuses) says so, rather than "a write failed"."""
        try:
            with self._engine.connect():
                pass
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the database: {_describe(exc)}") from exc

    # --- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); SQLAlchemy errors → StoreError."""
        try:
            with self._write_lock, self._engine.begin() as conn:
                yield conn
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

    def _init_schema(self, schema: str | None) -> None:
        with self._write() as conn:
            if self._postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
                if schema is not None:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            JOBS.metadata.create_all(conn, tables=list(TABLES))
            found = conn.scalar(select(SCHEMA_META.c.version).where(SCHEMA_META.c.id == 1))
            if found is None:
                conn.execute(insert(SCHEMA_META).values(id=1, version=SCHEMA_VERSION))
                return
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"the database schema is version {found}, newer than this orchestrator"
                    f" understands ({SCHEMA_VERSION}): upgrade the orchestrator, or point it"
                    " at another database"
                )
            for version in range(found, SCHEMA_VERSION):
                step = _UPGRADES.get(version)
                if step is None:
                    raise StoreError(f"no upgrade from schema version {version}")
                step(conn)
            if found != SCHEMA_VERSION:
                conn.execute(
                    update(SCHEMA_META).where(SCHEMA_META.c.id == 1).values(version=SCHEMA_VERSION)
                )

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- jobs ---------------------------------------------------------------------------

    def create_job(self, new: NewJob, now: datetime) -> tuple[Job, bool]:
        now = ensure_utc(now)
        params_text = canonical(new.params)
        existing = self._find_job(J.key == new.key)
        if existing is not None:
            return same_job(existing, new), False
        job = Job(
            id=0,
            key=new.key,
            kind=new.kind,
            provider=new.provider,
            state=JobState.QUEUED,
            params=json.loads(params_text),
            created_at=now,
            updated_at=now,
            state_since=now,
        )
        values = _job_values(job)
        try:
            with self._engine.begin() as conn:
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
                        to_state=JobState.QUEUED.value,
                        payload=dumps(
                            {"kind": new.kind, "provider": new.provider, "params": job.params}
                        ),
                        note="",
                    )
                )
        except IntegrityError as exc:
            # a concurrent creator of the same key won the race
            existing = self._find_job(J.key == new.key)
            if existing is None:
                raise StoreError(f"cannot record job {new.key!r}: {_describe(exc)}") from exc
            return same_job(existing, new), False
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record job {new.key!r}: {_describe(exc)}") from exc
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
        return _job_from_row(row, _load_artifacts(conn, [row["id"]]).get(row["id"], ()))

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
            return _jobs_with_artifacts(conn, conn.execute(query).mappings().all())

    def count_by_state(self) -> dict[JobState, int]:
        query = select(J.state, func.count()).group_by(J.state)
        with self._read() as conn:
            return {JobState(state): int(n) for state, n in conn.execute(query).all()}

    def events(self, job_id: int, *, limit: int | None = None) -> list[Event]:
        query = select(EVENTS).where(EVENTS.c.job_id == job_id)
        if limit is None:
            query = query.order_by(EVENTS.c.id)
        else:
            query = query.order_by(EVENTS.c.id.desc()).limit(max(0, limit))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        found = [_event_from_row(row) for row in rows]
        return found if limit is None else found[::-1]

    def find_by_token(self, token_hash: str) -> TokenOwner | None:
        with self._read() as conn:
            found = conn.execute(
                select(CALLBACK_TOKENS.c.job_id, CALLBACK_TOKENS.c.attempt).where(
                    CALLBACK_TOKENS.c.token_hash == token_hash
                )
            ).first()
            if found is None:
                return None
            job = self._find_job_on(conn, J.id == found.job_id)
            if job is None:  # pragma: no cover - the foreign key forbids it
                return None
            return TokenOwner(job, int(found.attempt))

    # --- writes -------------------------------------------------------------------------

    def apply(
        self,
        job: Job,
        updated: Job | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None = None,
        release_owner: str | None = None,
    ) -> Job:
        with self._write() as conn:
            return self._apply_on(
                conn, job, updated, event, now, token_hash=token_hash, release_owner=release_owner
            )

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One write transaction for several read-decide-apply steps (group commit)."""
        with self._write() as conn:
            yield _SQLUnit(self, conn)

    def _apply_on(
        self,
        conn: Connection,
        job: Job,
        updated: Job | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None = None,
        release_owner: str | None = None,
    ) -> Job:
        now = ensure_utc(now)
        values: dict[str, Any] = {"version": job.version + 1}
        artifacts_changed = False
        if updated is not None:
            if updated.id != job.id:
                raise ValueError(f"updated job id {updated.id} is not job id {job.id}")
            names = [a.name for a in updated.artifacts]
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate artifact names in job {job.key!r}: {names}")
            old, new = _job_values(job), _job_values(updated)
            values.update({name: new[name] for name in _MUTABLE if new[name] != old[name]})
            artifacts_changed = updated.artifacts != job.artifacts
        if release_owner is not None:
            held = J.lease_owner == release_owner
            values["lease_owner"] = case((held, null()), else_=J.lease_owner)
            values["lease_expires_at"] = case((held, null()), else_=J.lease_expires_at)
        cas = update(JOBS).where(J.id == job.id, J.version == job.version).values(values)
        event_row = {
            "job_id": job.id,
            "at": now,
            "source": event.source,
            "type": event.type,
            "from_state": job.state.value,
            "to_state": updated.state.value if updated is not None else None,
            "payload": dumps(event.payload),
            "note": event.note,
        }
        if conn.execute(cas).rowcount != 1:
            raise StaleJob(
                f"job {job.key!r} changed since version {job.version}: reload and decide again"
            )
        conn.execute(insert(EVENTS).values(event_row))
        if updated is not None and artifacts_changed:
            self._write_artifacts(conn, job, updated)
        if token_hash is not None:
            attempt = (updated or job).attempt
            conn.execute(
                insert(CALLBACK_TOKENS).values(
                    token_hash=token_hash, job_id=job.id, created_at=now, attempt=attempt
                )
            )
        faultpoints.reach("store.before_commit")
        return in_utc(replace(updated if updated is not None else job, version=job.version + 1))

    def _write_artifacts(self, conn: Connection, job: Job, updated: Job) -> None:
        """Make the job's artifact rows match ``updated.artifacts`` (by name)."""
        before = {a.name: a for a in job.artifacts}
        names = [a.name for a in updated.artifacts]
        if any(name not in names for name in before):
            gone = delete(ARTIFACTS).where(A.job_id == job.id)
            if names:
                gone = gone.where(A.name.not_in(names))
            conn.execute(gone)
        rows = [_artifact_values(job.id, a) for a in updated.artifacts if before.get(a.name) != a]
        if not rows:
            return
        columns = [name for name in rows[0] if name not in ("job_id", "name")]
        if self._postgres:
            pg = postgresql.insert(ARTIFACTS)
            conn.execute(
                pg.on_conflict_do_update(
                    index_elements=[A.job_id, A.name],
                    set_={name: pg.excluded[name] for name in columns},
                ),
                rows,
            )
        else:
            lite = sqlite.insert(ARTIFACTS)
            conn.execute(
                lite.on_conflict_do_update(
                    index_elements=[A.job_id, A.name],
                    set_={name: lite.excluded[name] for name in columns},
                ),
                rows,
            )

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
        query = _due_query(which, now, older_than, self._pollable).limit(limit)
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=JOBS)
        with self._write() as conn:
            ids = list(conn.scalars(query))
            if not ids:
                return []
            rows = self._lease(conn, J.id.in_(ids), owner, now, lease_s)
            jobs = _jobs_with_artifacts(conn, rows)
        position = {job_id: i for i, job_id in enumerate(ids)}
        return sorted(jobs, key=lambda job: position[job.id])

    def claim_job(self, job_id: int, owner: str, now: datetime, lease_s: float) -> Job | None:
        now = ensure_utc(now)
        takeable = and_(J.id == job_id, or_(_lease_free(now), J.lease_owner == owner))
        with self._write() as conn:
            rows = self._lease(conn, takeable, owner, now, lease_s)
            if not rows:
                if conn.scalar(select(J.id).where(J.id == job_id)) is None:
                    raise JobIdNotFound(job_id)
                return None
            return _jobs_with_artifacts(conn, rows)[0]

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


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(J.lease_owner.is_(None), J.lease_expires_at <= now)


def _due_query(
    which: Claim, now: datetime, older_than: datetime | None, pollable: ColumnElement[bool]
) -> Select[int]:
    """Ids of lease-free jobs due in queue ``which``, the earliest due first."""
    free = _lease_free(now)
    query = select(J.id)
    if which == SUBMIT:
        return query.where(
            J.state == JobState.QUEUED.value,
            or_(J.not_before.is_(None), J.not_before <= now),
            free,
        ).order_by(J.not_before.nulls_first(), J.id)
    if which == POLL:
        return query.where(pollable, J.next_poll_at <= now, free).order_by(J.next_poll_at, J.id)
    if which == DOWNLOAD:
        due_artifact = and_(
            A.job_id == J.id,
            A.state == ArtifactState.PENDING.value,
            A.next_attempt_at <= now,
        )
        earliest = select(func.min(A.next_attempt_at)).where(due_artifact).scalar_subquery()
        return query.where(
            J.state == JobState.SUCCEEDED.value, free, exists().where(due_artifact)
        ).order_by(earliest, J.id)
    if which == DEADLINE:
        return query.where(J.state.in_(_DEADLINE_VALUES), J.deadline_at <= now, free).order_by(
            J.deadline_at, J.id
        )
    if which == STALE_SUBMIT:
        # a submitting job always had an owner: no lease at all is as stale as an expired one
        return query.where(J.state == JobState.SUBMITTING.value, free).order_by(
            J.lease_expires_at.nulls_first(), J.id
        )
    if which == UNCERTAIN:
        if older_than is None:
            raise ValueError("claiming UNCERTAIN jobs needs older_than (now - grace)")
        return query.where(
            J.state == JobState.UNCERTAIN.value,
            J.state_since <= ensure_utc(older_than),
            free,
        ).order_by(J.state_since, J.id)
    raise ValueError(f"unknown claim queue {which.name!r}")


def _load_artifacts(conn: Connection, job_ids: Iterable[int]) -> dict[int, tuple[Artifact, ...]]:
    """Artifacts of the given jobs, in the order they were first recorded."""
    ids = list(job_ids)
    found: dict[int, list[Artifact]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(ARTIFACTS).where(A.job_id.in_(chunk)).order_by(A.job_id, A.id)
        for row in conn.execute(query).mappings():
            found.setdefault(row["job_id"], []).append(_artifact_from_row(row))
    return {job_id: tuple(artifacts) for job_id, artifacts in found.items()}


def _jobs_with_artifacts(conn: Connection, rows: Sequence[RowMapping]) -> list[Job]:
    artifacts = _load_artifacts(conn, (row["id"] for row in rows))
    return [_job_from_row(row, artifacts.get(row["id"], ())) for row in rows]


# --- rows <-> records -------------------------------------------------------------------------


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "key": job.key,
        "kind": job.kind,
        "provider": job.provider,
        "state": job.state.value,
        "params": canonical(job.params),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "version": job.version,
        "task_id": job.task_id,
        "result": dumps(job.result) if job.result is not None else None,
        "error": dumps(job.error.to_json()) if job.error is not None else None,
        "polls": job.polls,
        "callbacks": job.callbacks,
        "submit_attempts": job.submit_attempts,
        "attempt": job.attempt,
        "finished_at": job.finished_at,
        "next_poll_at": job.next_poll_at,
        "not_before": job.not_before,
        "deadline_at": job.deadline_at,
        "poll_failures": job.poll_failures,
        "hint": job.hint,
        "hint_polls": job.hint_polls,
        "upstream_status": job.upstream_status,
        "state_since": job.state_since,
    }


def _job_from_row(row: RowMapping, artifacts: tuple[Artifact, ...]) -> Job:
    error = json.loads(row["error"]) if row["error"] is not None else None
    return Job(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        provider=row["provider"],
        state=JobState(row["state"]),
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        task_id=row["task_id"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        artifacts=artifacts,
        error=JobError(error["stage"], error.get("code"), error["message"]) if error else None,
        polls=row["polls"],
        callbacks=row["callbacks"],
        submit_attempts=row["submit_attempts"],
        attempt=row["attempt"],
        finished_at=row["finished_at"],
        next_poll_at=row["next_poll_at"],
        not_before=row["not_before"],
        deadline_at=row["deadline_at"],
        poll_failures=row["poll_failures"],
        hint=row["hint"],
        hint_polls=row["hint_polls"],
        upstream_status=row["upstream_status"],
        state_since=row["state_since"],
    )


def _artifact_values(job_id: int, artifact: Artifact) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "name": artifact.name,
        "url": artifact.url,
        "media": artifact.media,
        "state": ArtifactState(artifact.state).value,
        "path": artifact.path,
        "bytes": artifact.bytes,
        "sha256": artifact.sha256,
        "attempts": artifact.attempts,
        "next_attempt_at": artifact.next_attempt_at,
        "last_error": artifact.last_error,
    }


def _artifact_from_row(row: RowMapping) -> Artifact:
    return Artifact(
        name=row["name"],
        url=row["url"],
        media=row["media"],
        state=ArtifactState(row["state"]),
        path=row["path"],
        bytes=row["bytes"],
        sha256=row["sha256"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
    )


def _event_from_row(row: RowMapping) -> Event:
    return Event(
        id=row["id"],
        job_id=row["job_id"],
        at=row["at"],
        source=row["source"],
        type=row["type"],
        from_state=JobState(row["from_state"]) if row["from_state"] is not None else None,
        to_state=JobState(row["to_state"]) if row["to_state"] is not None else None,
        payload=json.loads(row["payload"]),
        note=row["note"],
    )


def _describe(exc: SQLAlchemyError) -> str:
    """The driver's message, without the SQL and bound parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig if orig is not None else exc}".strip()


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

    def apply(
        self,
        job: Job,
        updated: Job | None,
        event: NewEvent,
        now: datetime,
        *,
        token_hash: str | None = None,
        release_owner: str | None = None,
    ) -> Job:
        return self._store._apply_on(
            self._conn, job, updated, event, now, token_hash=token_hash, release_owner=release_owner
        )
