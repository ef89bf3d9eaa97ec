"""Schema migrations (Alembic) on SQLite and PostgreSQL: the scripts agree with the code, a
database the last release before migrations left is refused, then upgraded with every row
intact; upgrades from several nodes at once take turns; an upgrade killed half-way changes
nothing. The daemon running on an upgraded database: tests/acceptance/test_migrations.py."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from orchestrator.exceptions import SchemaMismatch
from orchestrator.states import JobState
from orchestrator.stores.baseline import SCHEMA_4
from orchestrator.stores.migrate import current, scripts, upgrade
from orchestrator.stores.schema import ALEMBIC_VERSION, BASELINE, HEAD, REVISIONS
from orchestrator.stores.sql import SQLStore
from orchestrator.stores.tables import JOBS, SCHEMA_VERSION
from tests.acceptance.harness import write_config
from tests.fixtures.release import load_release_db
from tests.integration.conftest import SharedDatabase

ROOT = Path(__file__).resolve().parents[3]


def differences(db: SharedDatabase, metadata: sa.MetaData = JOBS.metadata) -> list[Any]:
    """What Alembic's autogenerate finds between the database's tables and ``metadata``."""
    engine = db.engine()
    try:
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    return [d for d in found if not (isinstance(d, tuple) and d[0] == "remove_table"
                                     and d[1].name == "alembic_version")]  # fmt: skip


def rows(db: SharedDatabase) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every orchestrator table except the schema's own bookkeeping."""
    engine = db.engine()
    try:
        with engine.connect() as conn:
            return {
                name: [
                    tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key))
                ]
                for name, table in SCHEMA_4.tables.items()
                if name != "schema_meta"
            }
    finally:
        engine.dispose()


def test_the_revisions_the_code_knows_are_the_migration_scripts() -> None:
    directory = scripts()
    assert directory.get_heads() == [HEAD]
    chain = [s.revision for s in directory.walk_revisions()]
    assert tuple(reversed(chain)) == REVISIONS and BASELINE == "0004"
    assert int(HEAD) == SCHEMA_VERSION
    for script in directory.walk_revisions():  # each sets schema_meta.version to its number
        assert int(script.revision) == script.module.VERSION


def test_every_migration_from_scratch_makes_the_tables_the_code_declares(
    shared_db: SharedDatabase,
) -> None:
    done = upgrade(shared_db.url, schema=shared_db.schema)
    assert done.before.state == "empty" and done.after == HEAD
    assert differences(shared_db) == []
    assert current(shared_db.url, schema=shared_db.schema).state == "current"
    store = shared_db.open(1)[0]  # and the store runs on it
    assert store.list_jobs() == []


def test_a_new_database_made_by_the_store_is_at_the_head_with_the_same_tables(
    shared_db: SharedDatabase,
) -> None:
    shared_db.open(1)
    found = current(shared_db.url, schema=shared_db.schema)
    assert (found.revision, found.version, found.state) == (HEAD, SCHEMA_VERSION, "current")
    assert differences(shared_db) == []
    assert not upgrade(shared_db.url, schema=shared_db.schema).changed


def test_the_baseline_is_the_schema_the_last_release_before_migrations_made(
    shared_db: SharedDatabase,
) -> None:
    load_release_db(shared_db.url, shared_db.schema)
    assert differences(shared_db, SCHEMA_4) == []


def test_a_release_database_is_refused_then_upgraded_with_every_row_intact(
    shared_db: SharedDatabase,
) -> None:
    load_release_db(shared_db.url, shared_db.schema)
    before = rows(shared_db)
    assert len(before["jobs"]) == 5 and len(before["events"]) > 20
    with pytest.raises(SchemaMismatch, match=r"version 4 .* run `orchestrator db upgrade`"):
        SQLStore(shared_db.url, schema=shared_db.schema)
    assert rows(shared_db) == before  # refusing changed nothing
    found = current(shared_db.url, schema=shared_db.schema)
    assert (found.revision, found.version, found.state) == (None, 4, "behind")
    done = upgrade(shared_db.url, schema=shared_db.schema)
    assert done.changed and done.before.version == 4
    assert rows(shared_db) == before
    assert differences(shared_db) == []
    again = upgrade(shared_db.url, schema=shared_db.schema)
    assert not again.changed and again.before.revision == HEAD
    store = shared_db.open(1)[0]
    states = {j.key: j.state for j in store.list_jobs()}
    assert states == {"song": JobState.COMPLETED, "song-wav": JobState.COMPLETED,
                      "refused": JobState.FAILED, "later": JobState.QUEUED,
                      "later-wav": JobState.WAITING}  # fmt: skip
    song = store.get_job_by_key("song")
    assert song is not None and len(song.artifacts) >= 2 and song.result


#: one node's `db upgrade`, started with the others once GO_FILE exists
UPGRADER = """
import json, sys, time
from pathlib import Path
from orchestrator.stores.migrate import upgrade
url, schema, go = sys.argv[1], sys.argv[2] or None, Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
print(json.dumps(upgrade(url, schema=schema).changed))
"""


def test_upgrades_from_several_nodes_at_once_take_turns(
    shared_db: SharedDatabase, tmp_path: Path
) -> None:
    load_release_db(shared_db.url, shared_db.schema)
    go = tmp_path / "go"
    # each node lingers after reading the schema's version: without the schema lock, every
    # one of them would read "version 4" and migrate it
    linger = {**os.environ, "ORCHESTRATOR_LINGER_AT": "migrate.found:0.3"}
    command = [sys.executable, "-c", UPGRADER, shared_db.url, shared_db.schema or "", str(go)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": linger}
    nodes = [subprocess.Popen(command, **pipes) for _ in range(4)]
    time.sleep(1.5)  # every node imported and waiting
    go.touch()
    results = [node.communicate(timeout=60) for node in nodes]
    assert [node.returncode for node in nodes] == [0] * 4, [err for _, err in results]
    assert sorted(json.loads(out) for out, _ in results) == [False, False, False, True]
    engine = shared_db.engine()
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(ALEMBIC_VERSION)).all() == [(HEAD,)]
    finally:
        engine.dispose()
    assert differences(shared_db) == []


def test_an_upgrade_killed_before_its_commit_leaves_the_database_as_it_was(
    shared_db: SharedDatabase, tmp_path: Path
) -> None:
    load_release_db(shared_db.url, shared_db.schema)
    before = rows(shared_db)
    config = write_config(tmp_path, "http://127.0.0.1:9", callback_port=9)
    config.write_text(
        config.read_text().replace("sqlite:///var/orchestrator.db", shared_db.config_url)
    )
    env = {**os.environ, "ORCHESTRATOR_CRASH_AT": "migrate.before_commit"}

    def db(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", "--config", str(config),
                               "db", *args], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, **kw)  # fmt: skip

    killed = db("upgrade", env=env)
    assert killed.returncode == -9, killed.stderr
    found = current(shared_db.url, schema=shared_db.schema)
    assert (found.revision, found.version) == (None, 4)
    assert rows(shared_db) == before
    behind = db("current")
    assert behind.returncode == 2 and "version 4" in behind.stdout
    assert "orchestrator db upgrade" in behind.stdout
    done = db("upgrade")
    assert done.returncode == 0, done.stderr
    assert f"to revision {HEAD}" in done.stdout
    now = db("current")
    assert now.returncode == 0 and f"revision {HEAD} (current)" in now.stdout


def test_a_migration_script_can_be_loaded_alone() -> None:
    # the scripts are a package too (mypy checks them); importing one runs nothing
    module = importlib.import_module(
        "orchestrator.stores.migrations.versions.v0005_migrations_take_over"
    )
    assert module.down_revision == "0004"
