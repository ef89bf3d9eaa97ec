"""Group commit over a real SQLite file: every acknowledged callback is stored, batches form
under concurrency, and one bad item never fails its neighbours."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.domain import NewEvent, NewJob
from orchestrator.exceptions import StoreError
from orchestrator.groupcommit import GroupCommitter
from orchestrator.observations import CallbackReceived, UpstreamReport, UpstreamStatus
from orchestrator.reconciler import Pending, Reconciler
from orchestrator.stores.sql import SQLStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": "x"}


@pytest.fixture
def store(tmp_path: Path) -> SQLStore:
    s = SQLStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield s
    s.close()


def _callback(status: UpstreamStatus = UpstreamStatus.TEXT_SUCCESS) -> CallbackReceived:
    return CallbackReceived(UpstreamReport(status=status, task_id=None))


def test_every_acknowledged_callback_is_stored_and_batches_form(store: SQLStore) -> None:
    jobs = [
        store.create_job(NewJob(f"j{i}", "generate_music", SONG, "sunoapi"), NOW)[0]
        for i in range(20)
    ]
    writer = GroupCommitter(Reconciler(store))
    writer.start()
    acked: list[int] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        for k in range(10):
            job = jobs[(n + k) % len(jobs)]
            writer.submit(Pending(job.id, _callback(), NOW, raw={"n": n, "k": k}))
            with lock:
                acked.append(job.id)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    assert len(acked) == 160 == writer.items
    assert writer.batches < writer.items  # concurrent callbacks shared commits
    stored = sum(1 for job in jobs for e in store.events(job.id) if e.type == "callback_received")
    assert stored == 160
    assert sum(store.get_job(j.id).callbacks for j in jobs) == 160


def test_a_batch_reads_its_jobs_at_once_and_sees_its_own_writes(store: SQLStore) -> None:
    a, b = (
        store.create_job(NewJob(key, "generate_music", SONG, "sunoapi"), NOW)[0]
        for key in ("a", "b")
    )
    items = [Pending(a.id, _callback(), NOW), Pending(b.id, _callback(), NOW)]
    outcomes = Reconciler(store).observe_many([*items, Pending(a.id, _callback(), NOW)])
    # the second observation of a is decided on the job the first one wrote
    assert [o.job.version for o in outcomes] == [a.version + 1, b.version + 1, a.version + 2]
    assert store.get_job(a.id).callbacks == 2 and store.get_job(b.id).callbacks == 1


def test_one_bad_item_fails_alone(store: SQLStore) -> None:
    job, _ = store.create_job(NewJob("ok", "generate_music", SONG, "sunoapi"), NOW)
    writer = GroupCommitter(Reconciler(store))
    results: dict[str, object] = {}
    # queue both before the writer runs, so they land in one batch
    done = threading.Event()

    def good() -> None:
        results["good"] = writer.submit(Pending(job.id, _callback(), NOW))
        done.set()

    def bad() -> None:
        try:
            writer.submit(Pending(99_999, _callback(), NOW))
        except Exception as exc:
            results["bad"] = exc

    threads = [threading.Thread(target=bad), threading.Thread(target=good)]
    for t in threads:
        t.start()
    writer.start()
    for t in threads:
        t.join(10)
    writer.stop()
    assert done.is_set()
    assert isinstance(results["bad"], Exception)
    assert store.get_job(job.id).callbacks == 1


def test_a_stopped_writer_refuses_at_once(store: SQLStore) -> None:
    writer = GroupCommitter(Reconciler(store))
    writer.start()
    writer.stop()
    with pytest.raises(StoreError):
        writer.submit(Pending(1, _callback(), NOW))


def test_stopping_a_writer_that_never_started_is_harmless(store: SQLStore) -> None:
    GroupCommitter(Reconciler(store)).stop()


def test_a_poll_result_releases_its_lease_in_the_same_commit(store: SQLStore) -> None:
    from orchestrator.observations import Polled
    from orchestrator.states import JobState
    from orchestrator.stores.base import POLL

    job, _ = store.create_job(NewJob("p", "generate_music", SONG, "sunoapi"), NOW)
    store.apply(
        job, {"state": JobState.PENDING, "task_id": "t", "next_poll_at": NOW}, _event(), NOW
    )
    [claimed] = store.claim(POLL, "me", NOW, 60.0, 10)
    writer = GroupCommitter(Reconciler(store))
    writer.start()
    report = UpstreamReport(status=UpstreamStatus.TEXT_SUCCESS, task_id="t")
    outcome = writer.submit(Pending(claimed.id, Polled(report), NOW, release_owner="me"))
    writer.stop()
    assert outcome.job.state == JobState.RUNNING and outcome.job.polls == 1
    # the lease is gone: another owner may claim it when it is due again
    later = outcome.job.next_poll_at
    assert later is not None
    assert [j.id for j in store.claim(POLL, "other", later, 60.0, 10)] == [job.id]


def _event() -> NewEvent:
    return NewEvent("test", "setup", {})
