"""The store's tables (SQLModel). Row classes never leave :mod:`orchestrator.stores`.

The store talks to these tables through SQLAlchemy Core (``JOBS``, ``EVENTS``, ...): the
row classes exist to declare the schema in one readable place.

Datetimes use :class:`UTCDateTime`: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; on SQLite a
fixed-width ISO 8601 string in UTC (``2026-11-02T10:00:00.000000``), so text order is time
order and ``<= now`` comparisons and ``ORDER BY`` are correct on both dialects. Values come
back timezone-aware UTC. JSON values (params, result, error, payload) are stored as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Float, Index, Integer, String, Table, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from orchestrator.clock import ensure_utc

#: ``schema_meta.version``: the number of the head migration (:data:`.schema.HEAD`). A release
#: before migrations refuses a database whose version is above its own.
SCHEMA_VERSION = 5


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (see the module docstring)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = ensure_utc(value)
        if dialect.name == "sqlite":
            # isoformat pads the year to 4 digits; timespec fixes the width at 26 characters
            return value.replace(tzinfo=None).isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        return ensure_utc(value)


def _dt(*, nullable: bool = True) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


def _text(*, nullable: bool = True) -> Any:
    return Field(sa_column=Column(Text, nullable=nullable))


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ux_jobs_key", "key", unique=True),
        # SUBMIT (state = queued, not_before), STALE_SUBMIT, DOWNLOAD, UNCERTAIN and
        # count_by_state use the state prefix
        Index("ix_jobs_state_not_before", "state", "not_before", "id"),
        # POLL: next_poll_at is NULL outside pollable states, so this range stays small
        Index("ix_jobs_next_poll_at", "next_poll_at", "id"),
        # DEADLINE: finished jobs keep their deadline_at, hence the state prefix
        Index("ix_jobs_state_deadline_at", "state", "deadline_at"),
        # release_all
        Index("ix_jobs_lease_owner", "lease_owner"),
        Index("ix_jobs_created_at", "created_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    key: str = Field(sa_column=Column(String, nullable=False))
    kind: str = Field(sa_column=Column(String, nullable=False))
    provider: str = Field(sa_column=Column(String, nullable=False))
    state: str = Field(sa_column=Column(String, nullable=False))
    params: str = _text(nullable=False)
    created_at: datetime = _dt(nullable=False)
    updated_at: datetime = _dt(nullable=False)
    version: int = Field(sa_column=Column(Integer, nullable=False))
    task_id: str | None = Field(default=None, sa_column=Column(String))
    result: str | None = _text()
    error: str | None = _text()
    polls: int = Field(sa_column=Column(Integer, nullable=False))
    callbacks: int = Field(sa_column=Column(Integer, nullable=False))
    submit_attempts: int = Field(sa_column=Column(Integer, nullable=False))
    #: schema 2: the current submit attempt (never reset; see domain.Job.attempt)
    attempt: int = Field(sa_column=Column(Integer, nullable=False, server_default="0"))
    finished_at: datetime | None = _dt()
    next_poll_at: datetime | None = _dt()
    not_before: datetime | None = _dt()
    deadline_at: datetime | None = _dt()
    poll_failures: int = Field(sa_column=Column(Integer, nullable=False))
    hint: str | None = Field(default=None, sa_column=Column(String))
    hint_polls: int = Field(sa_column=Column(Integer, nullable=False))
    upstream_status: str | None = Field(default=None, sa_column=Column(String))
    state_since: datetime | None = _dt()
    #: schema 3: adaptive polling (see domain.Job)
    accepted_at: datetime | None = _dt()
    timeline: str | None = _text()
    poll_note: str | None = _text()
    #: schema 4: pipelines (see domain.Job); parents is a JSON array of keys
    parents: str | None = _text()
    for_each: str | None = _text()
    template: str | None = _text()
    lease_owner: str | None = Field(default=None, sa_column=Column(String))
    lease_expires_at: datetime | None = _dt()


class EventRow(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_job_id", "job_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    job_id: int = Field(foreign_key="jobs.id", nullable=False)
    at: datetime = _dt(nullable=False)
    source: str = Field(sa_column=Column(String, nullable=False))
    type: str = Field(sa_column=Column(String, nullable=False))
    from_state: str | None = Field(default=None, sa_column=Column(String))
    to_state: str | None = Field(default=None, sa_column=Column(String))
    payload: str = _text(nullable=False)
    note: str = Field(sa_column=Column(Text, nullable=False))
    #: schema 4: which daemon (or CLI process) wrote the event
    node: str | None = Field(default=None, sa_column=Column(String))


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"
    __table_args__ = (Index("ux_artifacts_job_id_name", "job_id", "name", unique=True),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    job_id: int = Field(foreign_key="jobs.id", nullable=False)
    name: str = Field(sa_column=Column(String, nullable=False))
    url: str = _text(nullable=False)
    media: str = Field(sa_column=Column(String, nullable=False))
    state: str = Field(sa_column=Column(String, nullable=False))
    path: str | None = _text()
    bytes: int | None = Field(default=None, sa_column=Column(Integer))
    sha256: str | None = Field(default=None, sa_column=Column(String))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = _dt()
    last_error: str | None = _text()


class CallbackTokenRow(SQLModel, table=True):
    __tablename__ = "callback_tokens"
    __table_args__ = (Index("ix_callback_tokens_job_id", "job_id"),)

    token_hash: str = Field(sa_column=Column(String, primary_key=True))
    job_id: int = Field(foreign_key="jobs.id", nullable=False)
    created_at: datetime = _dt(nullable=False)
    #: schema 2: the submit attempt (jobs.attempt when it was sent) this token was issued for
    attempt: int = Field(sa_column=Column(Integer, nullable=False, server_default="0"))


class DurationRow(SQLModel, table=True):
    """Schema 3: one succeeded job's stage brackets (seconds from accepted submit), the
    newest :data:`orchestrator.durations.KEPT_PER_GROUP` kept per (kind, model)."""

    __tablename__ = "durations"
    __table_args__ = (Index("ix_durations_kind_model_id", "kind", "model", "id"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    kind: str = Field(sa_column=Column(String, nullable=False))
    model: str = Field(sa_column=Column(String, nullable=False))
    recorded_at: datetime = _dt(nullable=False)
    done_lo: float = Field(sa_column=Column(Float, nullable=False))
    done_hi: float = Field(sa_column=Column(Float, nullable=False))
    text_lo: float | None = Field(default=None, sa_column=Column(Float))
    text_hi: float | None = Field(default=None, sa_column=Column(Float))
    first_lo: float | None = Field(default=None, sa_column=Column(Float))
    first_hi: float | None = Field(default=None, sa_column=Column(Float))


class AccountRow(SQLModel, table=True):
    """Schema 4: what belongs to the provider account, by name (the credit guard's balance,
    hold and daily count as JSON), shared by every daemon on the database."""

    __tablename__ = "account"

    name: str = Field(sa_column=Column(String, primary_key=True))
    value: str = _text(nullable=False)
    updated_at: datetime = _dt(nullable=False)


class NotificationRow(SQLModel, table=True):
    """Schema 4: the outbox. A row is written in the transaction of the transition that
    causes it; the sender leases due rows (``state = pending``, ``next_attempt_at <= now``)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ux_notifications_webhook_id", "webhook_id", unique=True),
        Index("ix_notifications_state_due", "state", "next_attempt_at", "id"),
        Index("ix_notifications_job_id", "job_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    webhook_id: str = Field(sa_column=Column(String, nullable=False))
    target: str = Field(sa_column=Column(String, nullable=False))
    event: str = Field(sa_column=Column(String, nullable=False))
    job_id: int | None = Field(default=None, sa_column=Column(Integer))
    body: str = _text(nullable=False)
    state: str = Field(sa_column=Column(String, nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = _dt()
    created_at: datetime = _dt(nullable=False)
    delivered_at: datetime | None = _dt()
    last_status: int | None = Field(default=None, sa_column=Column(Integer))
    last_error: str | None = _text()
    lease_owner: str | None = Field(default=None, sa_column=Column(String))
    lease_expires_at: datetime | None = _dt()


class NotificationAttemptRow(SQLModel, table=True):
    """Schema 4: every attempt of every notification (append-only)."""

    __tablename__ = "notification_attempts"
    __table_args__ = (Index("ix_notification_attempts_notification_id", "notification_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    notification_id: int = Field(sa_column=Column(Integer, nullable=False))
    at: datetime = _dt(nullable=False)
    status: int | None = Field(default=None, sa_column=Column(Integer))
    error: str | None = _text()
    duration_s: float = Field(sa_column=Column(Float, nullable=False))


class ReplayRow(SQLModel, table=True):
    """Schema 4: signed callbacks already accepted (kie.ai replay protection), shared by every
    daemon on the database, each until its signature's timestamp leaves the tolerance."""

    __tablename__ = "replay_memory"
    __table_args__ = (Index("ix_replay_memory_expires_at", "expires_at"),)

    key: str = Field(sa_column=Column(String, primary_key=True))
    expires_at: datetime = _dt(nullable=False)


class SchemaMetaRow(SQLModel, table=True):
    """One row (id = 1): the schema version the database was last upgraded to."""

    __tablename__ = "schema_meta"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))


JOBS: Table = JobRow.__table__  # type: ignore[attr-defined]
EVENTS: Table = EventRow.__table__  # type: ignore[attr-defined]
ARTIFACTS: Table = ArtifactRow.__table__  # type: ignore[attr-defined]
CALLBACK_TOKENS: Table = CallbackTokenRow.__table__  # type: ignore[attr-defined]
SCHEMA_META: Table = SchemaMetaRow.__table__  # type: ignore[attr-defined]
DURATIONS: Table = DurationRow.__table__  # type: ignore[attr-defined]
ACCOUNT: Table = AccountRow.__table__  # type: ignore[attr-defined]
NOTIFICATIONS: Table = NotificationRow.__table__  # type: ignore[attr-defined]
NOTIFICATION_ATTEMPTS: Table = NotificationAttemptRow.__table__  # type: ignore[attr-defined]
REPLAY_MEMORY: Table = ReplayRow.__table__  # type: ignore[attr-defined]

#: Every table, in creation order.
TABLES: tuple[Table, ...] = (
    JOBS,
    EVENTS,
    ARTIFACTS,
    CALLBACK_TOKENS,
    SCHEMA_META,
    DURATIONS,
    ACCOUNT,
    NOTIFICATIONS,
    NOTIFICATION_ATTEMPTS,
    REPLAY_MEMORY,
)
