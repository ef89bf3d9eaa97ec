"""The SQLite settings of docs/durability.md, and a power-cut-style kill.

A child process commits events in a loop through the store and prints each id only after its
commit returned; it is SIGKILLed mid-loop. The database must pass ``PRAGMA integrity_check``
and hold every id the child reported. (A real power cut cannot be simulated here: the kill
proves no acknowledged commit is lost with the process; ``synchronous=FULL`` is what extends
that to the OS and the disk, see docs/durability.md.)
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.stores.sql import SQLStore

pytestmark = pytest.mark.timeout(60)

CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from orchestrator.domain import NewEvent, NewJob
    from orchestrator.stores.sql import SQLStore

    store = SQLStore(sys.argv[1])
    job, _ = store.create_job(
        NewJob(key="k", kind="generate_music", provider="sunoapi", params={}),
        datetime.now(UTC),
    )
    i = 0
    while True:
        i += 1
        job = store.apply(
            job, None, NewEvent(source="test", type="tick", payload={"i": i}, note=""),
            datetime.now(UTC),
        )
        print(i, flush=True)
    """
)


def test_pragmas(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        engine = store._engine
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA busy_timeout").scalar() == 30000
            assert pragma("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        store.close()


def test_kill_mid_commit_loses_no_reported_commit(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{db}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    reported: list[int] = []
    started = time.monotonic()
    while len(reported) < 300 and time.monotonic() - started < 30:
        line = proc.stdout.readline()
        if not line:
            break
        reported.append(int(line))
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    reported += [int(x) for x in rest.split()]
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) >= 300

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT json_extract(payload, '$.i') FROM events WHERE type = 'tick'"
            )
        }
    missing = set(reported) - stored
    assert not missing, f"{len(missing)} acknowledged commits lost"
    # the store reopens cleanly (WAL recovery) and keeps working
    store = SQLStore(f"sqlite:///{db}")
    try:
        assert store.get_job_by_key("k").version >= len(reported)
    finally:
        store.close()
