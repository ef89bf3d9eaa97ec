"""What belongs to the provider account holds across daemons: an account record changed by
many writers at once loses no update, and three daemons' submit windows on one database
(SQLite file, PostgreSQL schema) never let more than the limit through in any window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.daemon.ratelimit import SharedWindow
from orchestrator.stores.sql import SQLStore
from tests.integration.conftest import SharedDatabase

WRITERS = 3


@pytest.fixture
def stores(shared_db: SharedDatabase) -> list[SQLStore]:
    return shared_db.open(WRITERS)  # one store per daemon


def run_all(stores: list[SQLStore], work: Any) -> None:
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def one(store: SQLStore) -> None:
        try:
            start.wait()
            work(store)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_concurrent_read_modify_writes_lose_nothing(stores: list[SQLStore]) -> None:
    def bump(store: SQLStore) -> None:
        for _ in range(40):
            store.update_account(
                "counter",
                lambda v, _: ({"n": (v or {"n": 0})["n"] + 1}, None),
                lambda: datetime.now(UTC),
            )

    run_all(stores, bump)
    assert stores[0].account("counter") == {"n": WRITERS * 40}


def test_three_daemons_windows_never_pass_more_than_the_limit(stores: list[SQLStore]) -> None:
    limit, window_s = 5, 0.5
    #: each grant as (before, after) the call: it was taken somewhere in between
    granted: list[tuple[float, float]] = []
    lock = threading.Lock()

    def submit(store: SQLStore) -> None:
        window = SharedWindow(store, "submit:acct", limit, window_s, lambda: datetime.now(UTC))
        deadline = datetime.now(UTC).timestamp() + 1.6
        while (before := datetime.now(UTC).timestamp()) < deadline:
            if window.try_acquire() == 0.0:
                with lock:
                    granted.append((before, datetime.now(UTC).timestamp()))

    run_all(stores, submit)
    granted.sort()
    assert len(granted) >= limit * 2  # the window refilled: it limits, it does not block
    # limit + 1 grants all taken within less than a window is a violation for certain when
    # even their widest reading (the first one's start to the last one's end) fits in it; a
    # thread descheduled after its grant can never make this fail
    for i, (start, _) in enumerate(granted):
        surely_inside = [g for g in granted[i:] if g[1] < start + window_s]
        assert len(surely_inside) <= limit, (start, surely_inside)


def test_a_penalty_holds_every_daemon(stores: list[SQLStore]) -> None:
    now = lambda: datetime.now(UTC)  # noqa: E731
    first = SharedWindow(stores[0], "submit:slow", 5, 10.0, now)
    other = SharedWindow(stores[1], "submit:slow", 5, 10.0, now)
    assert other.available() == 5
    first.penalize(30.0)  # the upstream said "slow down" to one daemon
    assert other.available() == 0 and other.try_acquire() > 25.0


def test_a_signed_callback_accepted_by_one_daemon_is_a_replay_for_the_others(
    stores: list[SQLStore],
) -> None:
    import time

    from orchestrator.web.callback_auth import KieSignature, SharedReplay, sign

    key, task = "kie-hmac-key-" + "k" * 20, "task-1"
    stamp = str(int(time.time()))
    signature = sign(key, task, stamp)
    nodes = [KieSignature(key, 300.0, SharedReplay(store)) for store in stores]
    ticket = nodes[0].verify(task, stamp, signature, time.time(), body=b"{}")
    ticket.commit()  # node 0 committed the callback
    from orchestrator.exceptions import CallbackUnauthorized

    for node in nodes[1:]:
        with pytest.raises(CallbackUnauthorized, match="replay"):
            node.verify(task, stamp, signature, time.time(), body=b"{}")
    # another callback of the same task signed in the same second (another body) is fine
    nodes[1].verify(task, stamp, signature, time.time(), body=b'{"x": 1}').release()


def test_one_daemon_seeing_the_upstream_down_pauses_all_and_one_probes(
    stores: list[SQLStore],
) -> None:
    from orchestrator.daemon.breaker import BreakerState, SharedBreaker

    mono, wall = [0.0], [1_000_000.0]
    nodes = [
        SharedBreaker(
            "up",
            store,
            threshold=2,
            cooldown_s=10.0,
            clock=lambda: mono[0],
            wall=lambda: wall[0],
            refresh_s=0.0,
        )
        for store in stores
    ]
    a, others = nodes[0], nodes[1:]
    a.failure()
    a.failure()  # a's threshold: the circuit opens for everyone
    for node in others:
        assert node.is_open and node.state() is BreakerState.OPEN
        assert node.room(10) == 0 and not node.allow()
    mono[0] += 11.0
    wall[0] += 11.0  # the cooldown passed: half-open everywhere, one probe in all
    probes = [node.allow() for node in nodes]
    assert probes.count(True) == 1, probes
    prober = nodes[probes.index(True)]
    prober.success()  # the probe answered: closed for everyone
    assert all(not node.is_open and node.allow() for node in nodes)


def test_on_postgresql_the_daemon_takes_the_database_s_clock(
    stores: list[SQLStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.clock import DatabaseClock, utcnow
    from orchestrator.config import Settings
    from orchestrator.daemon.runner import Daemon

    store = stores[0]
    now = store.database_now()
    monkeypatch.setenv("SUNO_API_KEY", "sandbox-key")
    daemon = Daemon(Settings(), store=store)
    daemon._build()
    try:
        if now is None:  # SQLite: the host's clock is the one
            assert daemon.clock is utcnow
        else:
            assert abs(now - utcnow()) < timedelta(seconds=5)
            assert isinstance(daemon.clock, DatabaseClock)
    finally:
        for client in daemon._clients:
            client.close()
        for pool in daemon._pools:
            pool.shutdown()


def test_the_poll_budget_is_the_account_s_not_each_daemon_s(stores: list[SQLStore]) -> None:
    from orchestrator.daemon.ratelimit import SharedTokenBucket

    rate, seconds = 30.0, 1.5
    taken: list[float] = []
    lock = threading.Lock()

    def poll(store: SQLStore) -> None:
        bucket = SharedTokenBucket(store, "polls:acct", rate, lambda: datetime.now(UTC),
                                   burst=5.0, chunk=3)  # fmt: skip
        stop = threading.Event()
        end = datetime.now(UTC).timestamp() + seconds
        while datetime.now(UTC).timestamp() < end:
            if bucket.acquire(stop, timeout_s=0.5):
                with lock:
                    taken.append(datetime.now(UTC).timestamp())

    run_all(stores, poll)
    # the whole account: the burst, the rate over the run, and a chunk per daemon in hand
    assert len(taken) <= 5 + rate * seconds + WRITERS * 3 + 3, len(taken)
    assert len(taken) >= rate * seconds * 0.5  # it limits, it does not block
