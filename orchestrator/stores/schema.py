"""The schema check when a store opens: the database must be at this code's migration head.

* An empty database is created at the head (the tables as :mod:`.tables` declares them, and
  the head stamped in ``alembic_version``), so a first start needs no extra step.
* A database at an older revision, or written by a release before migrations, is refused
  with the command to run: ``orchestrator db upgrade`` (:mod:`.migrate`). The daemon never
  migrates by itself: an upgrade is the operator's decision, after a backup.
* A database at a revision this code does not know was upgraded by a newer release: refused.

Runs inside the store's first write transaction. On PostgreSQL an advisory lock (the one
``db upgrade`` takes) makes daemons starting together, and an upgrade, take turns.
The revisions are constants here, so opening a store never loads Alembic; a test checks
them against the migration scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
)

from orchestrator.exceptions import SchemaMismatch, StoreError
from orchestrator.stores.tables import JOBS, SCHEMA_META, SCHEMA_VERSION, TABLES

#: Every migration this code has, oldest first (``stores/migrations/versions``).
REVISIONS: Final = ("0004", "0005")
#: The revision this code runs on.
HEAD: Final = REVISIONS[-1]
#: The revision a database written by a release before migrations (schema 4) is at.
BASELINE: Final = REVISIONS[0]

#: Key of the PostgreSQL advisory lock that serialises schema creation and upgrades.
PG_SCHEMA_LOCK: Final = 0x6F726368  # "orch"

#: Alembic's own version table, as Alembic creates it (written here for a new database).
ALEMBIC_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

UPGRADE_HINT: Final = (
    "run `orchestrator db upgrade` (back the database up first: `orchestrator db backup`,"
    " or pg_dump), then start again"
)


@dataclass(frozen=True)
class Found:
    """What a database says about its schema."""

    #: the ``alembic_version`` row (None: no migrations were ever run on it)
    revision: str | None
    #: ``schema_meta.version`` (written by every release)
    version: int | None
    #: no orchestrator table at all
    empty: bool

    @property
    def state(self) -> str:
        """``current``, ``behind``, ``ahead``, ``empty`` or ``unknown``."""
        if self.revision == HEAD:
            return "current"
        if self.revision in REVISIONS:
            return "behind"
        if self.revision is not None:
            return "ahead"
        if self.version is not None:
            return "behind" if self.version <= SCHEMA_VERSION else "ahead"
        return "empty" if self.empty else "unknown"

    def describe(self) -> str:
        if self.revision is not None:
            return f"revision {self.revision}"
        if self.version is not None:
            return f"version {self.version} (from a release before migrations)"
        return "no schema" if self.empty else "no schema version"

    def mismatch(self) -> str:
        """Why this code will not run on the database, and what to do."""
        state = self.state
        if state == "behind":
            return (
                f"the database schema is at {self.describe()}, older than this orchestrator's"
                f" revision {HEAD}: {UPGRADE_HINT}"
            )
        if state == "ahead":
            return (
                f"the database schema is at {self.describe()}, newer than this orchestrator"
                f" understands (its head is {HEAD}): a newer orchestrator upgraded it. Run"
                " that version, or point [storage] url at another database"
            )
        return (
            "the database has orchestrator tables but no schema version: it was not made by"
            " the orchestrator; point [storage] url at another database"
        )


def find(conn: Connection) -> Found:
    """Read the schema's revision and version (the search path's first schema on
    PostgreSQL)."""
    names = set(inspect(conn).get_table_names())
    revision = version = None
    if ALEMBIC_VERSION.name in names:
        revision = conn.scalar(select(ALEMBIC_VERSION.c.version_num))
    if SCHEMA_META.name in names:
        version = conn.scalar(select(SCHEMA_META.c.version).where(SCHEMA_META.c.id == 1))
    empty = not names & {table.name for table in TABLES}
    return Found(revision, version, empty)


def lock(conn: Connection, *, postgres: bool, schema: str | None) -> None:
    """Take the schema lock for this transaction (PostgreSQL: the advisory lock, after which
    the schema named by the store's ``schema``, if any, exists; SQLite: the write lock every
    write transaction already holds)."""
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK})
        if schema is not None:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def create_at_head(conn: Connection) -> None:
    """Create today's tables in an empty database and record the head as their revision."""
    JOBS.metadata.create_all(conn, tables=list(TABLES))
    conn.execute(insert(SCHEMA_META).values(id=1, version=SCHEMA_VERSION))
    ALEMBIC_VERSION.create(conn)
    conn.execute(insert(ALEMBIC_VERSION).values(version_num=HEAD))


def open_schema(conn: Connection, *, postgres: bool, schema: str | None) -> None:
    """At a store's open: pass a database at the head, create an empty one, refuse the rest
    (:class:`~orchestrator.exceptions.SchemaMismatch`, saying what to run)."""
    lock(conn, postgres=postgres, schema=schema)
    found = find(conn)
    if found.state == "current":
        return
    if found.state == "empty":
        create_at_head(conn)
        return
    if found.state == "unknown":
        raise StoreError(found.mismatch())
    raise SchemaMismatch(found.mismatch())
