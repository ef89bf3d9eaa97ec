"""The schema's life: creating the tables, recording their version, upgrading an older one.

Runs inside one write transaction at start. On PostgreSQL an advisory lock makes daemons
starting together take turns; a database newer than the code is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from sqlalchemy import Connection, Table, insert, select, text, update

from orchestrator.exceptions import StoreError
from orchestrator.stores.tables import EVENTS, JOBS, SCHEMA_META, SCHEMA_VERSION, TABLES


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
    ``durations`` table is made by ``create_all`` before the steps run."""
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

#: Key of the PostgreSQL advisory lock that serialises schema creation across daemons.
PG_SCHEMA_LOCK: Final = 0x6F726368  # "orch"


def init_schema(conn: Connection, *, postgres: bool, schema: str | None) -> None:
    """Create what is missing, then upgrade step by step to :data:`SCHEMA_VERSION`."""
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK})
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
        step = UPGRADES.get(version)
        if step is None:
            raise StoreError(f"no upgrade from schema version {version}")
        step(conn)
    if found != SCHEMA_VERSION:
        conn.execute(
            update(SCHEMA_META).where(SCHEMA_META.c.id == 1).values(version=SCHEMA_VERSION)
        )
