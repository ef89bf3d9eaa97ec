"""The schema at version 4, frozen: what the last release before Alembic created, and what the
baseline migration (revision ``0004``) creates on an empty database.

Never edit it: :mod:`orchestrator.stores.tables` is the schema of today, and a change to it
is a new migration. Written from ``alembic.autogenerate`` over the schema-4 tables, checked
against the dump that release left (``tests/fixtures/schema4.*.sql``) by the migration tests.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Index, MetaData, Table

from orchestrator.stores.tables import UTCDateTime

#: The schema-4 tables (created in this order: referenced tables first).
SCHEMA_4 = MetaData()

_ACCOUNT = Table(
    "account",
    SCHEMA_4,
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("name"),
)
_DURATIONS = Table(
    "durations",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("model", sa.String(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("done_lo", sa.Float(), nullable=False),
    sa.Column("done_hi", sa.Float(), nullable=False),
    sa.Column("text_lo", sa.Float(), nullable=True),
    sa.Column("text_hi", sa.Float(), nullable=True),
    sa.Column("first_lo", sa.Float(), nullable=True),
    sa.Column("first_hi", sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
)
Index("ix_durations_kind_model_id", _DURATIONS.c.kind, _DURATIONS.c.model, _DURATIONS.c.id)
_JOBS = Table(
    "jobs",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("provider", sa.String(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("params", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("task_id", sa.String(), nullable=True),
    sa.Column("result", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("polls", sa.Integer(), nullable=False),
    sa.Column("callbacks", sa.Integer(), nullable=False),
    sa.Column("submit_attempts", sa.Integer(), nullable=False),
    sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("next_poll_at", UTCDateTime(), nullable=True),
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("deadline_at", UTCDateTime(), nullable=True),
    sa.Column("poll_failures", sa.Integer(), nullable=False),
    sa.Column("hint", sa.String(), nullable=True),
    sa.Column("hint_polls", sa.Integer(), nullable=False),
    sa.Column("upstream_status", sa.String(), nullable=True),
    sa.Column("state_since", UTCDateTime(), nullable=True),
    sa.Column("accepted_at", UTCDateTime(), nullable=True),
    sa.Column("timeline", sa.Text(), nullable=True),
    sa.Column("poll_note", sa.Text(), nullable=True),
    sa.Column("parents", sa.Text(), nullable=True),
    sa.Column("for_each", sa.Text(), nullable=True),
    sa.Column("template", sa.Text(), nullable=True),
    sa.Column("lease_owner", sa.String(), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
)
Index("ix_jobs_created_at", _JOBS.c.created_at, _JOBS.c.id)
Index("ix_jobs_lease_owner", _JOBS.c.lease_owner)
Index("ix_jobs_next_poll_at", _JOBS.c.next_poll_at, _JOBS.c.id)
Index("ix_jobs_state_deadline_at", _JOBS.c.state, _JOBS.c.deadline_at)
Index("ix_jobs_state_not_before", _JOBS.c.state, _JOBS.c.not_before, _JOBS.c.id)
Index("ux_jobs_key", _JOBS.c.key, unique=True)
_NOTIFICATION_ATTEMPTS = Table(
    "notification_attempts",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("notification_id", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
)
Index(
    "ix_notification_attempts_notification_id",
    _NOTIFICATION_ATTEMPTS.c.notification_id,
    _NOTIFICATION_ATTEMPTS.c.id,
)
_NOTIFICATIONS = Table(
    "notifications",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("webhook_id", sa.String(), nullable=False),
    sa.Column("target", sa.String(), nullable=False),
    sa.Column("event", sa.String(), nullable=False),
    sa.Column("job_id", sa.Integer(), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("lease_owner", sa.String(), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
)
Index("ix_notifications_job_id", _NOTIFICATIONS.c.job_id, _NOTIFICATIONS.c.id)
Index(
    "ix_notifications_state_due",
    _NOTIFICATIONS.c.state,
    _NOTIFICATIONS.c.next_attempt_at,
    _NOTIFICATIONS.c.id,
)
Index("ux_notifications_webhook_id", _NOTIFICATIONS.c.webhook_id, unique=True)
_REPLAY_MEMORY = Table(
    "replay_memory",
    SCHEMA_4,
    sa.Column("key", sa.String(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("key"),
)
Index("ix_replay_memory_expires_at", _REPLAY_MEMORY.c.expires_at)
_SCHEMA_META = Table(
    "schema_meta",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
)
_ARTIFACTS = Table(
    "artifacts",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("job_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("media", sa.String(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("path", sa.Text(), nullable=True),
    sa.Column("bytes", sa.Integer(), nullable=True),
    sa.Column("sha256", sa.String(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
    sa.PrimaryKeyConstraint("id"),
)
Index("ux_artifacts_job_id_name", _ARTIFACTS.c.job_id, _ARTIFACTS.c.name, unique=True)
_CALLBACK_TOKENS = Table(
    "callback_tokens",
    SCHEMA_4,
    sa.Column("token_hash", sa.String(), nullable=False),
    sa.Column("job_id", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
    sa.PrimaryKeyConstraint("token_hash"),
)
Index("ix_callback_tokens_job_id", _CALLBACK_TOKENS.c.job_id)
_EVENTS = Table(
    "events",
    SCHEMA_4,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("job_id", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(), nullable=False),
    sa.Column("type", sa.String(), nullable=False),
    sa.Column("from_state", sa.String(), nullable=True),
    sa.Column("to_state", sa.String(), nullable=True),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("node", sa.String(), nullable=True),
    sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
    sa.PrimaryKeyConstraint("id"),
)
Index("ix_events_job_id", _EVENTS.c.job_id, _EVENTS.c.id)
