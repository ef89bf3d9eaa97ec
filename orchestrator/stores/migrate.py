"""``orchestrator db upgrade`` and ``db current``: Alembic migrations, both dialects.

An upgrade is one transaction holding the schema lock (PostgreSQL: an advisory lock, with
transactional DDL; SQLite: the write lock, ``BEGIN IMMEDIATE``, SQLite's DDL being
transactional too). So two nodes upgrading at once take turns and the second finds nothing
to do, a daemon starting meanwhile waits for the upgrade's end, and an upgrade killed half-way
leaves the database as it was. In that transaction:

1. a database written by a release before migrations (``schema_meta`` only) is brought to
   schema 4 by the frozen steps of :mod:`.legacy`, and stamped at the baseline, ``0004``;
2. Alembic upgrades it to the head (an empty database: every migration from the baseline).

Migrations go forward only; to go back, restore the backup taken before. Scripts live in
``stores/migrations/versions`` (one file per revision; ``scripts/new-migration`` writes one).
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from orchestrator import faultpoints
from orchestrator.exceptions import SchemaMismatch, StoreError
from orchestrator.stores.engines import describe, open_database
from orchestrator.stores.legacy import BASELINE_VERSION, upgrade_to_baseline
from orchestrator.stores.schema import BASELINE, HEAD, Found, find, lock

#: Where the migration scripts are (a package resource, so an installed wheel has them).
SCRIPT_LOCATION = "orchestrator.stores:migrations"


@dataclass(frozen=True)
class Upgrade:
    """What ``db upgrade`` did."""

    before: Found
    after: str

    @property
    def changed(self) -> bool:
        return self.before.revision != self.after


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, with ``conn`` as the connection the migrations run on."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = conn
    return config


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def current(url: str, *, schema: str | None = None) -> Found:
    """The schema a database is at (nothing is created or changed)."""
    database = open_database(url, busy_timeout_s=30.0, schema=schema, create=False)
    try:
        with database.engine.connect() as conn:
            return find(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"database read failed: {describe(exc)}") from exc
    finally:
        database.engine.dispose()


def upgrade(url: str, *, schema: str | None = None, busy_timeout_s: float = 60.0) -> Upgrade:
    """Bring the database at ``url`` to this code's head (see the module docstring)."""
    database = open_database(url, busy_timeout_s=busy_timeout_s, schema=schema)
    try:
        with database.engine.begin() as conn:
            lock(conn, postgres=database.postgres, schema=schema)
            found = find(conn)
            faultpoints.linger("migrate.found")
            if found.state in ("ahead", "unknown"):
                raise SchemaMismatch(found.mismatch())
            config = alembic_config(conn)
            if found.revision is None and found.version is not None:
                if found.version < BASELINE_VERSION:
                    upgrade_to_baseline(conn, found.version)
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            faultpoints.reach("migrate.before_commit")
        return Upgrade(found, HEAD)
    except SQLAlchemyError as exc:
        raise StoreError(f"the upgrade failed, nothing was changed: {describe(exc)}") from exc
    finally:
        database.engine.dispose()
