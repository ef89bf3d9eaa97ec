"""Upgrading from the last release before migrations, as a user does: the database that
release left (tests/fixtures), the daemon refusing it with the command to run, `db upgrade`,
then the daemon on it against the sandbox: the jobs it had left finish, the finished ones
are as they were. On SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.acceptance.harness import Deployment, wait_for
from tests.fixtures.release import load_release_db

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(the config's URL, the PostgreSQL schema or None), holding the release's database."""
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        url = f"sqlite:///{tmp_path / 'var' / 'orchestrator.db'}"
        load_release_db(url, None)
        yield url, None
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema = f"release_{uuid.uuid4().hex[:12]}"
    load_release_db(pg_url, schema)  # the dump creates its schema
    engine = sa.create_engine(pg_url)
    yield f"{pg_url}?options=-csearch_path%3D{schema}", schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def test_the_daemon_runs_on_an_upgraded_release_database_with_its_jobs_intact(
    start_sandbox: Any, deploy: Any, database: tuple[str, str | None]
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    d: Deployment = deploy(sandbox.url, interval_s=1.0)
    d.config.write_text(d.config.read_text().replace("sqlite:///var/orchestrator.db", database[0]))
    refused = d.cli("run")
    assert refused.returncode == 2
    assert "version 4" in refused.stderr and "run `orchestrator db upgrade`" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert d.cli("status").returncode == 2  # every command, not only the daemon
    upgraded = d.cli("db", "upgrade", check=True)
    assert "upgraded the database from version 4" in upgraded.stdout
    song_before = d.cli_json("show", "song")
    d.start_daemon()

    def settled() -> dict[str, str] | None:
        states = {j["key"]: j["state"] for j in d.jobs()}
        return states if states["later-wav"] == "completed" else None

    states = wait_for(settled, 90, "the jobs the release left, finished")
    assert states == {"song": "completed", "song-wav": "completed", "refused": "failed",
                      "later": "completed", "later-wav": "completed"}  # fmt: skip
    song_after = d.cli_json("show", "song")
    assert song_after["events"] == song_before["events"]  # untouched
    assert song_after["result"] == song_before["result"]
    later = d.cli_json("show", "later-wav")
    assert later["params"]["taskId"] == d.cli_json("show", "later")["task_id"]
    assert later["artifacts"] and all(Path(f["path"]).is_file() for f in later["artifacts"])
    d.stop_all()
    assert len(sandbox.ledger()["submits"]) == 2  # only the two it had left
