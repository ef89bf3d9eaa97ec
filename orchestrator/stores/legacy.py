"""The schema's upgrades before Alembic: a database written by a release of schema version
1, 2 or 3 is brought to version 4 (the Alembic baseline, revision ``0004``) by these steps,
then the migrations take over (:mod:`orchestrator.stores.migrate`). Frozen: never edit a
step, add a migration instead.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Table, text

from orchestrator.stores.baseline import SCHEMA_4
from orchestrator.stores.tables import EVENTS, JOBS


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


def _upgrade_2_to_3(conn: Connection) -> None:
    """Schema 3: adaptive polling. The jobs get their timeline columns (empty: a job polled
    before the upgrade is scheduled as a cold start until its next accept); the
    ``durations`` table is made (from :data:`SCHEMA_4`) before the steps run."""
    for name in ("accepted_at", "timeline", "poll_note"):
        conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {_column_type(conn, name)}"))


def _upgrade_3_to_4(conn: Connection) -> None:
    """Schema 4: pipelines. Jobs recorded before it have no parents."""
    for name in ("parents", "for_each", "template"):
        conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {_column_type(conn, name)}"))
    # and the node that wrote each event (earlier events: unknown)
    conn.execute(text(f"ALTER TABLE events ADD COLUMN node {_column_type(conn, 'node', EVENTS)}"))


def _column_type(conn: Connection, name: str, table: Table = JOBS) -> str:
    """A column's type as its table declares it (``jobs`` by default), in this dialect."""
    column_type = table.c[name].type
    return str(column_type.dialect_impl(conn.dialect).compile(dialect=conn.dialect))


#: Upgrade steps: ``UPGRADES[n]`` migrates a version-n database to version n + 1.
UPGRADES: dict[int, Callable[[Connection], None]] = {
    1: _upgrade_1_to_2,
    2: _upgrade_2_to_3,
    3: _upgrade_3_to_4,
}


def upgrade_to_baseline(conn: Connection, found: int) -> None:
    """Bring a schema-``found`` database (1 to 3) to schema 4: the tables it lacks are
    created as schema 4 had them, then the steps run."""
    SCHEMA_4.create_all(conn, checkfirst=True)
    for version in range(found, BASELINE_VERSION):
        UPGRADES[version](conn)


#: The schema version the Alembic baseline (revision ``0004``) is.
BASELINE_VERSION = 4
