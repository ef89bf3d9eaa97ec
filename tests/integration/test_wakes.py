"""LISTEN/NOTIFY between daemons on one PostgreSQL (orchestrator.stores.wakes): heard by the
others on the same schema only, never by the sender, and again after the listening
connection was cut."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchestrator.stores.sql import SQLStore
from orchestrator.stores.wakes import PostgresWakes
from tests.acceptance.harness import wait_for
from tests.integration.conftest import SharedDatabase

pytestmark = pytest.mark.postgres


class Ear:
    def __init__(self) -> None:
        self.heard: list[tuple[str, int]] = []
        self.event = threading.Event()

    def __call__(self, what: str, job_id: int) -> None:
        if what != "probe":  # listening() asks whether LISTEN is in place
            self.heard.append((what, job_id))
        self.event.set()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[SharedDatabase]:
    import uuid

    db = SharedDatabase(pg_url, f"wakes_{uuid.uuid4().hex[:12]}")
    db.open(1)  # the schema and its tables
    yield db
    for store in db.opened:
        store.close()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE'))
    engine.dispose()


def listening(wakes: PostgresWakes, ear: Ear, store: SQLStore) -> PostgresWakes:
    wakes.listen(ear)
    # LISTEN is in place once a probe from another node is heard
    probe = store.wakes("probe")
    assert probe is not None
    wait_for(lambda: probe.publish("probe", 0) and ear.event.wait(0.2), 10, "LISTEN")
    probe.close()
    ear.heard.clear()
    ear.event.clear()
    return wakes


def test_a_wake_up_is_heard_by_the_other_daemons_of_the_schema_only(
    pg_db: SharedDatabase, pg_url: str
) -> None:
    a_ear, b_ear, stranger_ear = Ear(), Ear(), Ear()
    store = pg_db.opened[0]
    a, b = store.wakes("node-a"), store.wakes("node-b")
    assert a is not None and b is not None and a.channel == b.channel
    stranger = PostgresWakes(pg_url, "node-c")  # the same database, another schema
    assert stranger.channel != a.channel
    try:
        listening(a, a_ear, store)
        listening(b, b_ear, store)
        stranger.listen(stranger_ear)
        time.sleep(0.3)
        assert b.publish("poll", 42)
        assert a_ear.event.wait(5)
        time.sleep(0.3)  # the others had their chance
        assert a_ear.heard == [("poll", 42)]
        assert b_ear.heard == []  # never its own
        assert stranger_ear.heard == []
        assert b.sent == 1 and a.heard >= 1  # (a also heard the probes)
    finally:
        for wakes in (a, b, stranger):
            wakes.close()


def test_the_listener_comes_back_after_its_connection_is_cut(
    pg_db: SharedDatabase, pg_url: str
) -> None:
    store = pg_db.opened[0]
    ear = Ear()
    a, b = store.wakes("node-a"), store.wakes("node-b")
    assert a is not None and b is not None
    try:
        listening(a, ear, store)
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:  # the server drops every LISTEN connection
            cut = conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
            ).all()  # fmt: skip
        engine.dispose()
        assert cut

        def heard_again() -> bool:
            b.publish("poll", 7)
            return ear.event.wait(0.3)

        wait_for(heard_again, 15, "the wake-up, after the listener reconnected")
        assert ("poll", 7) in ear.heard
    finally:
        a.close()
        b.close()
