"""The store contract (orchestrator/stores/base.py), run against every backend.

Each test gets a fresh store: a SQLite file under tmp_path, and, when
ORCHESTRATOR_TEST_PG_URL is set, a PostgreSQL schema of its own (dropped afterwards), so tests
may run concurrently against one database. Time is passed in explicitly: leases and due
times are tested at their boundaries (exactly due at ``now``, not due one microsecond
earlier) without sleeping.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.domain import (
    Artifact,
    ArtifactState,
    Job,
    JobError,
    NewEvent,
    NewJob,
    NewNotification,
    NotificationAttempt,
    NotificationState,
)
from orchestrator.durations import KEPT_PER_GROUP, DurationSample
from orchestrator.exceptions import (
    ConfigError,
    JobIdNotFound,
    JobKeyConflict,
    JobNotFound,
    SchemaMismatch,
    StaleJob,
    StoreError,
)
from orchestrator.machine import decide
from orchestrator.observations import (
    ArtifactStored,
    Observation,
    Polled,
    SubmitAccepted,
    SubmitStarted,
    Track,
    UpstreamReport,
    UpstreamStatus,
)
from orchestrator.states import JobState
from orchestrator.stores.base import (
    DEADLINE,
    DOWNLOAD,
    POLL,
    STALE_SUBMIT,
    SUBMIT,
    UNCERTAIN,
    Claim,
    TokenOwner,
)
from orchestrator.stores.memory import MemoryStore
from orchestrator.stores.migrate import current, upgrade
from orchestrator.stores.schema import ALEMBIC_VERSION
from orchestrator.stores.sql import SQLStore
from orchestrator.stores.tables import SCHEMA_META

S = JobState
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
LEASE = 30.0
LEASE_TD = timedelta(seconds=LEASE)
WORKER = Path(__file__).with_name("claim_worker.py")


# --- fixtures --------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    schema: str | None = None
    opened: list[SQLStore] = field(default_factory=list)
    #: the in-memory backend: "reopening" it is the same store (it lives in the process)
    memory: MemoryStore | None = None

    def open(self, **kwargs: Any) -> SQLStore:
        if self.memory is not None:
            return self.memory  # type: ignore[return-value]
        store = SQLStore(self.url, schema=self.schema, **kwargs)
        self.opened.append(store)
        return store

    def sql_only(self) -> None:
        if self.memory is not None:
            pytest.skip("about the SQL schema itself: the in-memory store has none")

    def raw_engine(self) -> sa.Engine:
        """An engine on the same tables, bypassing the store (for tampering)."""
        if self.schema is None:
            return sa.create_engine(self.url)
        return sa.create_engine(self.url, connect_args={"options": f"-c search_path={self.schema}"})

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", "memory:", memory=MemoryStore())
        return
    if request.param == "sqlite":
        # a missing parent directory: the store creates it
        sqlite_backend = Backend("sqlite", f"sqlite:///{tmp_path / 'var' / 'store.db'}")
        try:
            yield sqlite_backend
        finally:
            sqlite_backend.close()
        return
    pg_url: str = request.getfixturevalue("pg_url")
    pg_backend = Backend("postgres", pg_url, schema=f"contract_{uuid.uuid4().hex[:16]}")
    try:
        yield pg_backend
    finally:
        pg_backend.close()
        engine = sa.create_engine(pg_url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{pg_backend.schema}" CASCADE'))
        finally:
            engine.dispose()


@pytest.fixture
def store(backend: Backend) -> SQLStore:
    return backend.open()


# --- helpers ---------------------------------------------------------------------------------


def new_job(key: str, kind: str = "generate_music", **params: Any) -> NewJob:
    base = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "calm piano"}
    return NewJob(key=key, kind=kind, params={**base, **params}, provider="sunoapi")


def force(
    store: SQLStore, job: Job, now: datetime, owner: str | None = None, **changes: Any
) -> Job:
    """Write arbitrary field changes through apply (a test-only event)."""
    forced = {"updated_at": now, **changes}
    return store.apply(job, forced, NewEvent("test", "forced", {}), now, release_owner=owner)


def make(store: SQLStore, key: str, now: datetime = T0, **changes: Any) -> Job:
    job, created = store.create_job(new_job(key), now)
    assert created
    return force(store, job, now, **changes) if changes else job


def observe(store: SQLStore, job: Job, observation: Observation, now: datetime) -> Job:
    """The reconciler's step: decide, then compare-and-set with the event row."""
    transition = decide(job, observation, now)
    changes = transition.changes_for(job, now) if transition else None
    event = NewEvent(
        observation.source,
        observation.name,
        observation.payload(),
        transition.note if transition else "no change",
    )
    token = transition.token_hash if transition else None
    return store.apply(job, changes, event, now, token_hash=token)


def artifact(name: str, due: datetime | None, **fields: Any) -> Artifact:
    url = f"http://127.0.0.1:8900/{name}"
    return Artifact(name=name, url=url, media="audio", next_attempt_at=due, **fields)


def ids(jobs: list[Job]) -> list[int]:
    return [job.id for job in jobs]


def all_datetimes(job: Job) -> list[datetime]:
    values = [
        job.created_at,
        job.updated_at,
        job.finished_at,
        job.next_poll_at,
        job.not_before,
        job.deadline_at,
        job.state_since,
        *(a.next_attempt_at for a in job.artifacts),
    ]
    return [v for v in values if v is not None]


# A job that becomes due in one queue exactly at `due`, for each queue.
def due_submit(store: SQLStore, due: datetime) -> Job:
    return make(store, "due", not_before=due)


def due_poll(store: SQLStore, due: datetime) -> Job:
    return make(store, "due", state=S.PENDING, task_id="task-1", next_poll_at=due)


def due_download(store: SQLStore, due: datetime) -> Job:
    stored = artifact("b.jpeg", None, state=ArtifactState.STORED, path="b.jpeg", bytes=3)
    later = artifact("c.mp3", due + timedelta(hours=1))
    return make(
        store,
        "due",
        state=S.SUCCEEDED,
        task_id="task-1",
        artifacts=(later, artifact("a.mp3", due), stored),
    )


def due_deadline(store: SQLStore, due: datetime) -> Job:
    return make(
        store,
        "due",
        state=S.RUNNING,
        task_id="task-1",
        deadline_at=due,
        next_poll_at=due + timedelta(hours=1),
    )


def due_stale_submit(store: SQLStore, due: datetime) -> Job:
    """A worker claimed it at due - LEASE, started submitting, and died."""
    make(store, "due")
    [claimed] = store.claim(SUBMIT, "dead-worker", due - LEASE_TD, LEASE, 1)
    return force(store, claimed, due - LEASE_TD, state=S.SUBMITTING, submit_attempts=1)


def due_uncertain(store: SQLStore, due: datetime) -> Job:
    return make(store, "due", state=S.UNCERTAIN, state_since=due)


QUEUES: list[tuple[Claim, Callable[[SQLStore, datetime], Job]]] = [
    (SUBMIT, due_submit),
    (POLL, due_poll),
    (DOWNLOAD, due_download),
    (DEADLINE, due_deadline),
    (STALE_SUBMIT, due_stale_submit),
    (UNCERTAIN, due_uncertain),
]
QUEUE_IDS = [queue.name for queue, _ in QUEUES]


# --- create / read ---------------------------------------------------------------------------


def test_create_job_records_a_queued_job_with_a_created_event(store: SQLStore) -> None:
    job, created = store.create_job(new_job("song"), T0)
    assert created
    assert job.state == S.QUEUED
    assert job.version == 0
    assert job.created_at == job.updated_at == job.state_since == T0
    assert store.get_job(job.id) == job
    assert store.get_job_by_key("song") == job
    [event] = store.events(job.id)
    assert (event.type, event.source, event.from_state, event.to_state) == (
        "created",
        "operator",
        None,
        S.QUEUED,
    )
    assert event.payload["params"] == job.params
    assert event.at == T0


def test_create_job_is_idempotent_by_key(store: SQLStore) -> None:
    first, created = store.create_job(new_job("song", extra={"a": 1, "b": [1, 2]}), T0)
    # the same params in another key order, at a later time
    params = dict(reversed(list(new_job("song", extra={"b": [1, 2], "a": 1}).params.items())))
    again, created_again = store.create_job(
        NewJob("song", "generate_music", params, "sunoapi"), T0 + timedelta(hours=1)
    )
    assert created and not created_again
    assert again == first
    assert len(store.events(first.id)) == 1
    assert store.count_by_state() == {S.QUEUED: 1}


@pytest.mark.parametrize(
    ("other", "says"),
    [
        (new_job("song", prompt="loud drums"), r"with other params \(changed: prompt\)"),
        (new_job("song", title="x"), r"other params \(added: title\)"),
        (
            new_job("song", kind="music_video"),
            r"another kind \('generate_music', not 'music_video'\)",
        ),
    ],
)
def test_create_job_with_the_same_key_and_other_params_conflicts(
    store: SQLStore, other: NewJob, says: str
) -> None:
    store.create_job(new_job("song"), T0)
    with pytest.raises(JobKeyConflict, match=says) as caught:
        store.create_job(other, T0)
    assert "IntegrityError" not in str(caught.value)
    assert store.get_job_by_key("song").params == new_job("song").params


def test_concurrent_creators_of_one_key_make_one_job(store: SQLStore) -> None:
    barrier = threading.Barrier(6)
    results: list[tuple[Job, bool]] = []
    errors: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(store.create_job(new_job("race"), T0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert len({job.id for job, _ in results}) == 1
    assert len(store.events(results[0][0].id)) == 1


def test_missing_jobs_raise_job_not_found(store: SQLStore) -> None:
    # a user's key: a usage error; an internal id: a store error, never mistaken for the other
    with pytest.raises(JobIdNotFound, match="no job with id 404"):
        store.get_job(404)
    with pytest.raises(JobNotFound, match="'nope'"):
        store.get_job_by_key("nope")
    with pytest.raises(JobIdNotFound):
        store.claim_job(404, "w", T0, LEASE)
    assert store.events(404) == []
    assert store.find_by_token("nope") is None


def test_list_jobs_filters_orders_and_limits(store: SQLStore) -> None:
    c = make(store, "c", T0 + timedelta(seconds=2), state=S.PENDING, task_id="t")
    a = make(store, "a", T0)
    b = make(store, "b", T0 + timedelta(seconds=1))
    video, _ = store.create_job(
        new_job("v", kind="music_video", taskId="t", audioId="a"), T0 + timedelta(seconds=3)
    )
    assert ids(store.list_jobs()) == [a.id, b.id, c.id, video.id]
    assert ids(store.list_jobs(states=[S.QUEUED])) == [a.id, b.id, video.id]
    assert ids(store.list_jobs(states=[S.PENDING, S.RUNNING])) == [c.id]
    assert ids(store.list_jobs(kind="music_video")) == [video.id]
    assert ids(store.list_jobs(states=[S.QUEUED], kind="generate_music", limit=1)) == [a.id]
    assert store.list_jobs(states=[]) == []
    assert store.list_jobs()[2] == store.get_job(c.id)
    assert store.count_by_state() == {S.QUEUED: 3, S.PENDING: 1}


def test_datetimes_come_back_aware_utc_to_the_microsecond(store: SQLStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    created_at = datetime(2026, 11, 2, 12, 0, 0, 123456, tzinfo=plus2)  # 10:00:00.123456Z
    job, _ = store.create_job(new_job("tz"), created_at)
    due = datetime(2026, 11, 2, 12, 30, tzinfo=plus2)  # 10:30Z
    job = force(
        store,
        job,
        created_at,
        state=S.SUCCEEDED,
        next_poll_at=due,
        deadline_at=due,
        finished_at=due,
        artifacts=(artifact("a.mp3", due),),
    )
    assert all(value.tzinfo is UTC for value in all_datetimes(job))  # as apply returns it
    stored = store.get_job(job.id)
    assert stored == job
    assert stored.created_at == T0 + timedelta(microseconds=123456)
    for value in all_datetimes(stored):
        assert value.tzinfo is UTC
    assert stored.next_poll_at == datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
    assert all(event.at.tzinfo is UTC for event in store.events(job.id))
    # comparisons are by instant, not by the text of the offset
    assert store.claim(POLL, "w", T0 + timedelta(minutes=30) - US, LEASE, 5) == []
    assert ids(store.claim(POLL, "w", T0 + timedelta(minutes=30), LEASE, 5)) == [job.id]
    assert store.claim(POLL, "other", T0 + timedelta(minutes=30), LEASE, 5) == []  # leased now


# --- apply: compare-and-set ------------------------------------------------------------------


def test_a_whole_lifecycle_through_decide(store: SQLStore) -> None:
    job, _ = store.create_job(new_job("life"), T0)
    [job] = store.claim(SUBMIT, "submitter", T0, LEASE, 10)
    job = observe(store, job, SubmitStarted(token_hash="hash-1"), T0)
    assert job.state == S.SUBMITTING
    assert store.find_by_token("hash-1") == TokenOwner(job, 1)
    job = observe(store, job, SubmitAccepted("task-1"), T0 + timedelta(seconds=1))
    assert job.state == S.PENDING and job.task_id == "task-1"

    t1 = T0 + timedelta(minutes=2)
    [job] = store.claim(POLL, "poller", job.next_poll_at or t1, LEASE, 10)
    track = Track(
        id="trk1",
        audio_url="http://127.0.0.1:8900/a.mp3",
        image_url="http://127.0.0.1:8900/a.jpeg",
    )
    report = UpstreamReport(UpstreamStatus.SUCCESS, "task-1", tracks=(track,))
    job = observe(store, job, Polled(report), t1)
    assert job.state == S.SUCCEEDED and len(job.artifacts) == 2
    assert store.get_job(job.id) == job

    [job] = store.claim(DOWNLOAD, "downloader", t1, LEASE, 10)
    for index, name in enumerate(a.name for a in job.artifacts):
        stored = ArtifactStored(name, f"/tmp/{name}", 10 + index, "ab" * 32)
        job = observe(store, job, stored, t1 + timedelta(seconds=index + 1))
    assert job.state == S.COMPLETED
    assert store.get_job(job.id) == job
    assert all(a.state == ArtifactState.STORED for a in store.get_job(job.id).artifacts)
    trail = [(e.type, e.from_state, e.to_state) for e in store.events(job.id)]
    assert trail == [
        ("created", None, S.QUEUED),
        ("submit_started", S.QUEUED, S.SUBMITTING),
        ("submit_accepted", S.SUBMITTING, S.PENDING),
        ("polled", S.PENDING, S.SUCCEEDED),
        ("artifact_stored", S.SUCCEEDED, S.SUCCEEDED),
        ("artifact_stored", S.SUCCEEDED, S.COMPLETED),
    ]


def test_apply_writes_the_new_row_and_bumps_the_version(store: SQLStore) -> None:
    job = make(store, "j")
    changes = dict(
        state=S.PENDING,
        task_id="task-9",
        result={"status": "PENDING", "tracks": [{"id": "x", "duration": 1.5}]},
        error=JobError("submit", 429, "slow down"),
        polls=3,
        hint="TEXT_SUCCESS",
        next_poll_at=T0 + timedelta(seconds=30),
        updated_at=T0 + timedelta(seconds=1),
    )
    stored = store.apply(job, changes, NewEvent("submitter", "submit_accepted", {}), T0)
    assert stored == replace(job, **changes, version=job.version + 1)
    assert store.get_job(job.id) == stored
    assert store.get_job(job.id).error == JobError("submit", 429, "slow down")


@pytest.mark.parametrize(
    "changes",
    [{"key": "other"}, {"id": 99}, {"version": 7}, {"created_at": T0}, {"colour": "red"}],
    ids=["key", "id", "version", "created_at", "unknown"],
)
def test_apply_writes_only_the_jobs_own_changeable_fields(
    store: SQLStore, changes: dict[str, Any]
) -> None:
    job = make(store, "j")
    before = (store.get_job(job.id), store.events(job.id))
    with pytest.raises(ValueError):
        store.apply(job, changes, NewEvent("test", "bad", {}), T0)
    assert (store.get_job(job.id), store.events(job.id)) == before


def test_a_stale_apply_raises_and_writes_nothing(store: SQLStore) -> None:
    job = make(store, "j", state=S.SUCCEEDED, artifacts=(artifact("a.mp3", T0),))
    winner = force(store, job, T0, polls=1)
    before = (store.get_job(job.id), store.events(job.id))

    loser = dict(state=S.FAILED, artifacts=(artifact("a.mp3", None, attempts=9),), polls=7)
    event = NewEvent("downloader", "download_failed", {"why": "late"})
    with pytest.raises(StaleJob):
        store.apply(job, loser, event, T0, token_hash="late-token", release_owner="w")
    with pytest.raises(StaleJob):
        store.apply(job, None, event, T0)
    assert (store.get_job(job.id), store.events(job.id)) == before
    assert store.get_job(job.id) == winner
    assert store.find_by_token("late-token") is None


def test_apply_without_an_update_appends_the_event_and_bumps_the_version(
    store: SQLStore,
) -> None:
    job = make(store, "j", state=S.RUNNING, task_id="t")
    later = T0 + timedelta(minutes=1)
    event = NewEvent("callback", "callback_received", {"raw": {"code": 200}}, "duplicate")
    stored = store.apply(job, None, event, later)
    assert stored == replace(job, version=job.version + 1)
    assert store.get_job(job.id) == stored
    last = store.events(job.id)[-1]
    assert (last.source, last.type, last.from_state, last.to_state) == (
        "callback",
        "callback_received",
        S.RUNNING,
        None,
    )
    assert (last.payload, last.note, last.at) == ({"raw": {"code": 200}}, "duplicate", later)
    with pytest.raises(StaleJob):  # the version moved: a concurrent observer must re-decide
        store.apply(job, None, event, later)


def test_a_unit_of_work_commits_several_applies_at_once(store: SQLStore) -> None:
    a, b = make(store, "a", state=S.RUNNING, task_id="ta"), make(store, "b", state=S.RUNNING)
    events_before = len(store.events(a.id))
    event = NewEvent("callback", "callback_received", {"raw": {"n": 1}})
    with store.unit_of_work() as unit:
        first = unit.apply(unit.get_job(a.id), None, event, T0)
        # reads inside the unit see its own writes: a second observation of the same job
        again = unit.get_job(a.id)
        assert again.version == first.version == a.version + 1
        unit.apply(again, {"polls": 5}, event, T0)
        unit.apply(unit.get_job(b.id), {"polls": 2}, event, T0)
    assert store.get_job(a.id).polls == 5 and store.get_job(a.id).version == a.version + 2
    assert store.get_job(b.id).polls == 2
    assert len(store.events(a.id)) == events_before + 2


def test_a_unit_of_work_reads_many_jobs_at_once_as_one_by_one(store: SQLStore) -> None:
    a, b = make(store, "a", state=S.RUNNING, task_id="ta"), make(store, "b", state=S.RUNNING)
    event = NewEvent("callback", "callback_received", {})
    with store.unit_of_work() as unit:
        unit.apply(unit.get_job(b.id), {"polls": 3}, event, T0)
        got = unit.get_jobs([a.id, b.id, a.id, 10_000])  # a twice, an id with no job
        assert sorted(got) == [a.id, b.id]
        assert got[a.id] == unit.get_job(a.id) == store.get_job(a.id)
        assert got[b.id] == unit.get_job(b.id)  # its own write, seen
        assert got[b.id].polls == 3
        assert unit.get_jobs([]) == {}


def test_a_unit_of_work_that_fails_writes_nothing(store: SQLStore) -> None:
    a = make(store, "a", state=S.RUNNING, task_id="ta")
    before = (store.get_job(a.id), store.events(a.id))
    event = NewEvent("callback", "callback_received", {})
    with pytest.raises(RuntimeError), store.unit_of_work() as unit:
        unit.apply(unit.get_job(a.id), {"polls": 9}, event, T0)
        raise RuntimeError("the writer died mid-batch")
    assert (store.get_job(a.id), store.events(a.id)) == before
    stale = replace(a, version=a.version - 1)
    with store.unit_of_work() as unit:
        with pytest.raises(StaleJob):
            unit.apply(stale, None, event, T0)  # a lost compare-and-set writes nothing...
        unit.apply(unit.get_job(a.id), None, event, T0)  # ...and the unit goes on
    assert len(store.events(a.id)) == len(before[1]) + 1
    with store.unit_of_work() as unit, pytest.raises(JobIdNotFound):
        unit.get_job(10_000)


def test_events_come_oldest_first_and_limit_gives_the_last(store: SQLStore) -> None:
    job = make(store, "j")
    for n in range(3):
        job = store.apply(job, None, NewEvent("poll", f"e{n}", {"n": n}), T0)
    other = make(store, "other")
    events = store.events(job.id)
    assert [e.type for e in events] == ["created", "e0", "e1", "e2"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert all(e.job_id == job.id for e in events)
    assert [e.type for e in store.events(job.id, limit=2)] == ["e1", "e2"]
    assert store.events(job.id, limit=0) == []
    assert [e.type for e in store.events(other.id)] == ["created"]


def test_artifacts_are_upserted_by_name_and_removed_when_gone(store: SQLStore) -> None:
    a, b = artifact("a.mp3", T0), artifact("b.jpeg", T0)
    job = make(store, "j", state=S.SUCCEEDED, artifacts=(a, b))
    assert store.get_job(job.id).artifacts == (a, b)

    stored_a = replace(
        a,
        state=ArtifactState.STORED,
        path="j/a.mp3",
        bytes=123,
        sha256="f" * 64,
        next_attempt_at=None,
    )
    failed_b = replace(b, attempts=2, last_error="timeout", next_attempt_at=T0 + LEASE_TD)
    c = artifact("c.mp4", None)
    job = force(store, job, T0, artifacts=(stored_a, failed_b, c))
    assert store.get_job(job.id).artifacts == (stored_a, failed_b, c)

    job = force(store, job, T0, artifacts=(stored_a, c))
    assert store.get_job(job.id).artifacts == (stored_a, c)
    job = force(store, job, T0, state=S.QUEUED, artifacts=())  # `retry`: a new attempt
    assert store.get_job(job.id).artifacts == ()
    assert store.get_job(job.id) == job


def test_callback_tokens_of_every_attempt_find_the_job_and_their_attempt(
    store: SQLStore,
) -> None:
    job = make(store, "j")
    other = make(store, "other")
    started = NewEvent("submitter", "submit_started", {})
    job = store.apply(job, {"attempt": 1}, started, T0, token_hash="h1")
    job = store.apply(job, {"attempt": 2}, started, T0, token_hash="h2")
    assert store.find_by_token("h1") == TokenOwner(job, 1)
    assert store.find_by_token("h2") == TokenOwner(job, 2)
    assert store.find_by_token("h3") is None
    found = store.find_by_token("h1")
    assert found is not None and found.job != other


# --- learned durations -----------------------------------------------------------------------


def duration(kind: str, n: int, model: str = "V4_5") -> DurationSample:
    return DurationSample(
        kind=kind,
        model=model,
        recorded_at=T0 + n * US,
        done=(50.0 + n, 51.0 + n),
        first=(30.0, 40.0) if n % 2 else None,
    )


def test_a_sample_is_written_with_its_transition_and_read_back_newest_first(
    store: SQLStore,
) -> None:
    job = make(store, "j")
    event = NewEvent("poll", "upstream_report", {})
    for n in range(3):
        job = store.apply(job, {"polls": n + 1}, event, T0, sample=duration("generate_music", n))
    store.apply(job, None, event, T0, sample=duration("wav", 0, model=""))
    found = store.durations(10)
    music = [s for s in found if s.kind == "generate_music"]
    assert music == [duration("generate_music", n) for n in (2, 1, 0)]
    assert [s for s in found if s.kind == "wav"] == [duration("wav", 0, model="")]
    # (the order between groups is not part of the contract, only within one)
    newest = sorted(store.durations(1), key=lambda s: s.kind)
    assert newest == [duration("generate_music", 2), duration("wav", 0, model="")]


def test_a_failed_unit_of_work_or_a_lost_compare_and_set_records_no_sample(
    store: SQLStore,
) -> None:
    job = make(store, "j")
    event = NewEvent("poll", "upstream_report", {})
    with pytest.raises(RuntimeError), store.unit_of_work() as unit:
        unit.apply(unit.get_job(job.id), None, event, T0, sample=duration("generate_music", 0))
        raise RuntimeError("the writer died mid-batch")
    stale = replace(job, version=job.version - 1)
    with pytest.raises(StaleJob):
        store.apply(stale, None, event, T0, sample=duration("generate_music", 1))
    assert store.durations(10) == []


def test_the_history_is_bounded_per_kind_and_model(store: SQLStore) -> None:
    job = make(store, "j")
    event = NewEvent("poll", "upstream_report", {})
    with store.unit_of_work() as unit:
        for n in range(KEPT_PER_GROUP + 3):
            job = unit.apply(job, None, event, T0, sample=duration("generate_music", n))
        job = unit.apply(job, None, event, T0, sample=duration("generate_music", 0, "V5"))
    kept = store.durations(KEPT_PER_GROUP + 10)
    ours = [s for s in kept if s.model == "V4_5"]
    assert len(ours) == KEPT_PER_GROUP  # the oldest three are gone, the other model untouched
    assert ours[0] == duration("generate_music", KEPT_PER_GROUP + 2)
    assert ours[-1] == duration("generate_music", 3)
    assert [s for s in kept if s.model == "V5"] == [duration("generate_music", 0, "V5")]


# --- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("queue", "setup"), QUEUES, ids=QUEUE_IDS)
def test_claim_is_due_exactly_at_its_time_and_leases_until_expiry(
    store: SQLStore, queue: Claim, setup: Callable[[SQLStore, datetime], Job]
) -> None:
    due = T0 + timedelta(hours=1)
    job = setup(store, due)

    # older_than is UNCERTAIN's cut-off (a grace of zero here); the other queues ignore it
    assert store.claim(queue, "w1", due - US, LEASE, 10, older_than=due - US) == []
    claimed = store.claim(queue, "w1", due, LEASE, 10, older_than=due)
    assert ids(claimed) == [job.id]
    assert claimed[0].version == job.version + 1
    assert claimed[0] == store.get_job(job.id)
    assert claimed[0].artifacts == job.artifacts

    # leased to w1: another owner gets nothing until the lease expires
    until = due + LEASE_TD
    assert store.claim(queue, "w2", until - US, LEASE, 10, older_than=until) == []
    assert store.claim_job(job.id, "w2", until - US, LEASE) is None
    taken = store.claim(queue, "w2", until, LEASE, 10, older_than=until)
    assert ids(taken) == [job.id]
    assert taken[0].version == job.version + 2

    # fencing: w1's lease was taken over, so its write loses
    with pytest.raises(StaleJob):
        force(store, claimed[0], until, owner="w1", polls=99)
    assert force(store, taken[0], until, owner="w2", polls=1).polls == 1


def test_claim_order_is_the_due_order_and_limit_applies(store: SQLStore) -> None:
    late = make(store, "late", state=S.PENDING, next_poll_at=T0 + timedelta(seconds=3))
    first = make(store, "first", state=S.PENDING, next_poll_at=T0 + timedelta(seconds=1))
    mid = make(store, "mid", state=S.PENDING, next_poll_at=T0 + timedelta(seconds=2))
    now = T0 + timedelta(seconds=3)
    assert ids(store.claim(POLL, "w", now, LEASE, 2)) == [first.id, mid.id]
    assert ids(store.claim(POLL, "w", now, LEASE, 2)) == [late.id]
    assert store.claim(POLL, "w", now, LEASE, 0) == []

    # SUBMIT: no not_before means due since creation, before any backoff
    backoff = make(store, "backoff", not_before=T0 + timedelta(seconds=1))
    fresh1 = make(store, "fresh1")
    fresh2 = make(store, "fresh2")
    assert ids(store.claim(SUBMIT, "w", now, LEASE, 10)) == [fresh1.id, fresh2.id, backoff.id]

    # DOWNLOAD: by the earliest due pending artifact
    d1 = make(store, "d1", state=S.SUCCEEDED, artifacts=(artifact("x", T0 + US * 5),))
    two = (artifact("x", T0 + US * 9), artifact("y", T0 + US))
    d2 = make(store, "d2", state=S.SUCCEEDED, artifacts=two)
    assert ids(store.claim(DOWNLOAD, "w", now, LEASE, 10)) == [d2.id, d1.id]


def test_claims_ignore_jobs_in_other_states(store: SQLStore) -> None:
    past = T0 - timedelta(days=1)
    pending = artifact("p.mp3", past)
    done = artifact("s.mp3", None, state=ArtifactState.STORED, path="s.mp3")
    # due columns set, but the state is not the queue's
    make(store, "completed", state=S.COMPLETED, next_poll_at=past, deadline_at=past)
    make(store, "failed-download", state=S.FAILED, artifacts=(pending,), deadline_at=past)
    make(store, "timed-out", state=S.TIMED_OUT, deadline_at=past)
    make(store, "succeeded-late", state=S.SUCCEEDED, deadline_at=past, artifacts=(done,))
    make(store, "cancelled", state=S.CANCELLED, not_before=past, state_since=past)
    make(store, "waiting", state=S.SUCCEEDED, artifacts=(artifact("w.mp3", None),))
    make(store, "pending-no-poll", state=S.PENDING, not_before=past, state_since=past)
    for queue, _ in QUEUES:
        assert store.claim(queue, "w", T0, LEASE, 100, older_than=T0) == [], queue.name


def test_stale_submit_also_takes_a_submitting_job_without_a_lease(store: SQLStore) -> None:
    make(store, "j")
    [job] = store.claim(SUBMIT, "w", T0, LEASE, 1)
    job = force(store, job, T0, owner="w", state=S.SUBMITTING)  # lease released
    assert ids(store.claim(STALE_SUBMIT, "sweeper", T0, LEASE, 10)) == [job.id]


def test_uncertain_claims_need_a_cut_off(store: SQLStore) -> None:
    with pytest.raises(ValueError, match="older_than"):
        store.claim(UNCERTAIN, "w", T0, LEASE, 1)


def test_claim_job_leases_one_job_unless_someone_else_holds_it(store: SQLStore) -> None:
    job = make(store, "j", state=S.PENDING)
    mine = store.claim_job(job.id, "a", T0, LEASE)
    assert mine is not None and mine.version == job.version + 1
    assert store.claim_job(job.id, "b", T0 + LEASE_TD - US, LEASE) is None
    # the holder may claim again (its lease is extended)
    again = store.claim_job(job.id, "a", T0 + timedelta(seconds=10), LEASE)
    assert again is not None and again.version == job.version + 2
    assert store.claim_job(job.id, "b", T0 + timedelta(seconds=10) + LEASE_TD - US, LEASE) is None
    taken = store.claim_job(job.id, "b", T0 + timedelta(seconds=10) + LEASE_TD, LEASE)
    assert taken is not None and taken.version == job.version + 3


def test_release_and_release_all_give_up_only_the_owners_leases(store: SQLStore) -> None:
    jobs = [make(store, f"j{i}", state=S.PENDING, next_poll_at=T0) for i in range(4)]
    assert len(store.claim(POLL, "a", T0, LEASE, 3)) == 3
    assert len(store.claim(POLL, "b", T0, LEASE, 3)) == 1
    store.release(jobs[0].id, "b")  # not the holder: no-op
    assert store.claim_job(jobs[0].id, "c", T0, LEASE) is None
    store.release(jobs[0].id, "a")
    assert store.claim_job(jobs[0].id, "c", T0, LEASE) is not None
    assert store.release_all("a") == 2
    assert store.release_all("a") == 0
    assert ids(store.claim(POLL, "c", T0, LEASE, 10)) == [jobs[1].id, jobs[2].id]
    assert store.release_all("b") == 1
    # release does not bump the version: a released job's holder is not fenced
    assert store.get_job(jobs[3].id).version == jobs[3].version + 1


def test_apply_release_owner_clears_only_that_owners_lease(store: SQLStore) -> None:
    job = make(store, "j", state=S.PENDING)
    held = store.claim_job(job.id, "a", T0, LEASE)
    assert held is not None
    held = force(store, held, T0, owner="b", polls=1)
    assert store.claim_job(job.id, "c", T0, LEASE) is None
    force(store, held, T0, owner="a", polls=2)
    assert store.claim_job(job.id, "c", T0, LEASE) is not None


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_claims_from_threads_never_share_a_job(store: SQLStore) -> None:
    jobs = [
        make(store, f"j{i}", state=S.PENDING, task_id=f"t{i}", next_poll_at=T0) for i in range(90)
    ]
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def work(owner: str) -> None:
        barrier.wait()
        try:
            while batch := store.claim(POLL, owner, T0, 60.0, 3):
                for job in batch:
                    polled = {"polls": job.polls + 1, "next_poll_at": None}
                    store.apply(
                        job, polled, NewEvent("poll", "polled", {}), T0, release_owner=owner
                    )
                with lock:
                    claimed.extend(ids(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(claimed) == sorted(ids(jobs))
    assert {job.polls for job in store.list_jobs()} == {1}


def test_concurrent_claims_from_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with SQLStore(url) as store:
        jobs = [make(store, f"j{i}", state=S.PENDING, next_poll_at=T0) for i in range(240)]
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "error",
                str(WORKER),
                url,
                f"p{n}",
                T0.isoformat(),
                "2",
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    go.touch()
    claimed: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "locked" not in err
        report = json.loads(out)
        assert report["errors"] == []
        claimed.extend(report["ids"])
    assert sorted(claimed) == sorted(ids(jobs))
    with SQLStore(url) as store:
        assert {job.polls for job in store.list_jobs()} == {1}


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_postgres_claims_skip_rows_locked_by_another_transaction(
    backend: Backend, store: SQLStore
) -> None:
    locked = make(store, "locked", state=S.PENDING, next_poll_at=T0)
    free = make(store, "free", state=S.PENDING, next_poll_at=T0 + US)
    got: list[list[Job]] = []
    engine = backend.raw_engine()
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": locked.id}
            )
            # in a thread: a claim that waited for the lock would otherwise hang the test
            claimer = threading.Thread(
                target=lambda: got.append(store.claim(POLL, "w", T0 + US, LEASE, 10))
            )
            claimer.start()
            claimer.join(timeout=10)
            skipped = not claimer.is_alive()
        claimer.join()
    finally:
        engine.dispose()
    assert skipped, "claim waited for a locked row instead of skipping it"
    assert [ids(batch) for batch in got] == [[free.id]]
    assert ids(store.claim(POLL, "w", T0 + US, LEASE, 10)) == [locked.id]


# --- schema and SQLite setup -----------------------------------------------------------------


def test_a_database_newer_than_the_code_is_refused(backend: Backend, store: SQLStore) -> None:
    backend.sql_only()
    job = make(store, "kept")
    store.close()
    reopened = backend.open()
    assert reopened.get_job(job.id) == job  # reopening keeps the data and the schema
    reopened.close()
    engine = backend.raw_engine()
    try:  # a newer release migrated it to a revision this code does not have
        with engine.begin() as conn:
            conn.execute(sa.update(ALEMBIC_VERSION).values(version_num="0099"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaMismatch, match="newer than this orchestrator"):
        backend.open()
    with pytest.raises(SchemaMismatch, match="revision 0099, newer"):
        upgrade(backend.url, schema=backend.schema)  # and db upgrade leaves it alone
    assert current(backend.url, schema=backend.schema).revision == "0099"


def test_a_schema_1_database_is_upgraded_with_attempts_derived_from_its_tokens(
    backend: Backend, store: SQLStore
) -> None:
    backend.sql_only()
    started = NewEvent("submitter", "submit_started", {})
    twice = make(store, "twice")
    sent = {"state": JobState.SUBMITTING}
    first = {"attempt": 1, "submit_attempts": 1, **sent}
    twice = store.apply(twice, first, started, T0, token_hash="t-1")
    second = {"attempt": 2, "submit_attempts": 2, **sent}
    twice = store.apply(twice, second, started, T0 + US, token_hash="t-2")
    retried = make(store, "retried")
    retried = store.apply(retried, {"attempt": 1}, started, T0, token_hash="r-1")
    store.close()
    engine = backend.raw_engine()
    try:  # what schema 1 looked like: no attempt columns
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE jobs DROP COLUMN attempt"))
            conn.execute(sa.text("ALTER TABLE callback_tokens DROP COLUMN attempt"))
            for column in (
                "accepted_at",
                "timeline",
                "poll_note",
                "parents",
                "for_each",
                "template",
            ):  # schema 3 and 4
                conn.execute(sa.text(f"ALTER TABLE jobs DROP COLUMN {column}"))
            conn.execute(sa.text("ALTER TABLE events DROP COLUMN node"))  # schema 4
            conn.execute(sa.text("DROP TABLE alembic_version"))  # before migrations
            conn.execute(sa.update(SCHEMA_META).values(version=1))
            # schema 1's `retry` put the job back in queued with submit_attempts = 0
            conn.execute(sa.text("UPDATE jobs SET submit_attempts = 0 WHERE key = 'retried'"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaMismatch, match=r"version 1 .* run `orchestrator db upgrade`"):
        backend.open()
    assert upgrade(backend.url, schema=backend.schema).changed
    upgraded = backend.open()
    try:
        assert upgraded.get_job(twice.id).attempt == 2
        assert [upgraded.find_by_token(h).attempt for h in ("t-1", "t-2")] == [1, 2]  # type: ignore[union-attr]
        # the retried job's only token belongs to an attempt that retry superseded
        assert upgraded.get_job(retried.id).attempt == 2
        assert upgraded.find_by_token("r-1").attempt == 1  # type: ignore[union-attr]
    finally:
        upgraded.close()


def test_sqlite_uses_wal_and_readers_never_wait_for_writers(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "x.db"
    with SQLStore(f"sqlite:///{path}", busy_timeout_s=0.2) as store:
        job = make(store, "j")
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            raw.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
            assert store.get_job(job.id) == job  # reads are deferred: not blocked
            with pytest.raises(StoreError, match="locked") as caught:
                store.release_all("w")  # past busy_timeout: translated, not raw
            assert isinstance(caught.value.__cause__, sa.exc.OperationalError)
            raw.execute("COMMIT")
            assert store.release_all("w") == 0
        finally:
            raw.close()


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="unsupported database URL"):
        SQLStore("mysql://localhost/x")
    with pytest.raises(ConfigError, match="not a database URL"):
        SQLStore("no url at all")
    with pytest.raises(ValueError, match="schema"):
        SQLStore("sqlite:///x.db", schema="s")


# --- pipelines -------------------------------------------------------------------------------


def test_a_job_with_parents_is_recorded_waiting_with_its_template(store: SQLStore) -> None:
    store.create_job(new_job("song"), T0)
    template = {"taskId": "${song.task_id}", "audioId": "${song.tracks[0].id}"}
    new = NewJob("wav", "wav", template, "sunoapi", after=("song",))
    job, created = store.create_job(new, T0)
    assert created and job.state == JobState.WAITING
    assert job.parents == ("song",) and job.template == template and job.for_each is None
    again, created_again = store.create_job(new, T0)
    assert not created_again and again.id == job.id
    # released: the params are resolved, the template stays, and the key still means the job
    released = force(store, job, T0, state=JobState.QUEUED, params={"taskId": "t", "audioId": "a"})
    assert store.get_job_by_key("wav") == released
    assert store.create_job(new, T0)[0].params == {"taskId": "t", "audioId": "a"}
    with pytest.raises(JobKeyConflict, match="other parents"):
        store.create_job(replace(new, after=("song", "other")), T0)
    with pytest.raises(JobKeyConflict, match="another for_each"):
        store.create_job(replace(new, for_each="song.tracks"), T0)
    created_event = store.events(job.id)[0]
    assert created_event.to_state == JobState.WAITING
    assert created_event.payload["after"] == ["song"]


def test_a_for_each_child_is_recorded_queued_under_its_for_each_job(store: SQLStore) -> None:
    child = NewJob("video.0", "music_video", {"taskId": "t", "audioId": "a"}, "sunoapi",
                   after=("video",), resolved=True)  # fmt: skip
    job, created = store.create_job(child, T0)
    assert created and job.state == JobState.QUEUED and job.parents == ("video",)
    assert job.template is None
    assert store.list_jobs(states=[JobState.WAITING]) == []


# --- the provider account --------------------------------------------------------------------


def test_account_records_are_written_and_replaced(store: SQLStore) -> None:
    assert store.account("credits") is None
    store.set_account("credits", {"balance": 10, "hold": "low"}, T0)
    store.set_account("other", {"x": [1, 2]}, T0)
    assert store.account("credits") == {"balance": 10, "hold": "low"}
    store.set_account("credits", {"balance": 99}, T0 + timedelta(seconds=1))
    assert store.account("credits") == {"balance": 99}
    assert store.account("other") == {"x": [1, 2]}


def test_an_account_update_gets_a_time_read_under_its_lock(store: SQLStore) -> None:
    # The cluster-wide limits store times in account records: a time read before the lock
    # may be older than the one another writer stored meanwhile, and a window would then let
    # one submit too many through. The store reads the clock once the record is locked.
    store.set_account("window", {"n": 0}, T0)
    holding, done = threading.Event(), threading.Event()
    seen: dict[str, float] = {}
    tick = iter(range(1, 1000))
    clock_lock = threading.Lock()

    def clock() -> datetime:  # a time that grows with every call, in call order
        with clock_lock:
            return T0 + timedelta(seconds=next(tick))

    def first(value: dict[str, Any] | None, now: datetime) -> tuple[dict[str, Any], None]:
        holding.set()
        done.wait(0.5)  # the second writer starts, and must wait for this one
        seen["first_done"] = clock().timestamp()
        return {"n": 1}, None

    def second(value: dict[str, Any] | None, now: datetime) -> tuple[dict[str, Any], None]:
        seen["second_now"] = now.timestamp()
        return {"n": (value or {})["n"] + 1}, None

    thread = threading.Thread(target=lambda: store.update_account("window", first, clock))
    thread.start()
    assert holding.wait(10)
    other = threading.Thread(target=lambda: store.update_account("window", second, clock))
    other.start()
    done.set()
    thread.join(10)
    other.join(10)
    assert store.account("window") == {"n": 2}
    assert seen["second_now"] > seen["first_done"], "the time was read before the lock"


# --- the outbox ------------------------------------------------------------------------------


def notification(target: str = "app", n: int = 0) -> NewNotification:
    body = {"type": "job.completed", "timestamp": "t", "data": {"key": "k"}}
    return NewNotification(f"msg_{target}_{n}_{uuid.uuid4().hex[:6]}", target, "job.completed",
                           body, T0)  # fmt: skip


def test_outbox_rows_commit_with_the_transition_and_only_with_it(store: SQLStore) -> None:
    job = make(store, "told")
    row = notification()
    changes = {"state": JobState.CANCELLED, "updated_at": T0}
    with pytest.raises(StaleJob):  # a lost compare-and-set writes no row
        store.apply(replace(job, version=job.version + 5), changes,
                    NewEvent("test", "x", {}), T0, outbox=[row])  # fmt: skip
    assert store.notifications() == []
    store.apply(job, changes, NewEvent("test", "x", {}), T0, outbox=[row])
    [stored] = store.notifications(job_id=job.id)
    assert (stored.webhook_id, stored.target, stored.state) == (row.webhook_id, "app", "pending")
    assert stored.body == row.body and stored.attempts == 0 and stored.next_attempt_at == T0


def test_outbox_rows_roll_back_with_a_failed_unit_of_work(store: SQLStore) -> None:
    job = make(store, "unit")
    with pytest.raises(RuntimeError), store.unit_of_work() as unit:
        current = unit.get_job(job.id)
        unit.apply(current, {"state": JobState.CANCELLED, "updated_at": T0},
                   NewEvent("test", "x", {}), T0, outbox=[notification()])  # fmt: skip
        raise RuntimeError("the batch fails after the apply")
    assert store.notifications() == []


def test_a_due_row_is_leased_to_one_sender_and_finished_by_it_only(store: SQLStore) -> None:
    store.add_notifications([notification("app", 1), notification("app", 2)], T0)
    later = T0 + timedelta(seconds=1)
    first = store.claim_notifications("a", later, 30.0, 1)
    assert len(first) == 1
    second = store.claim_notifications("b", later, 30.0, 10)
    assert [n.id for n in second] != [n.id for n in first] and len(second) == 1
    assert store.claim_notifications("c", later, 30.0, 10) == []  # both leased
    attempt = NotificationAttempt(later, 503, "HTTP 503", 0.01)
    retry_at = later + timedelta(seconds=5)
    assert not store.finish_notification(first[0].id, "b", attempt, NotificationState.PENDING,
                                         retry_at)  # fmt: skip
    assert store.finish_notification(first[0].id, "a", attempt, NotificationState.PENDING,
                                     retry_at)  # fmt: skip
    [row] = store.notifications(ids=[first[0].id])
    assert (row.attempts, row.last_status, row.next_attempt_at) == (1, 503, retry_at)
    assert store.claim_notifications("c", later, 30.0, 10) == []  # not due yet
    assert [n.id for n in store.claim_notifications("c", retry_at, 30.0, 10)] == [row.id]
    done = NotificationAttempt(retry_at, 204, None, 0.02)
    assert store.finish_notification(row.id, "c", done, NotificationState.DELIVERED, None)
    [row] = store.notifications(ids=[row.id])
    assert row.state == NotificationState.DELIVERED and row.delivered_at == retry_at
    assert [a.status for a in store.notification_attempts(row.id)] == [503, 204]
    # an expired lease is taken over
    stuck = store.claim_notifications("d", T0 + timedelta(minutes=5), 1.0, 10)
    assert [n.id for n in stuck] == [second[0].id]


def test_replay_makes_rows_due_again_with_their_id(store: SQLStore) -> None:
    store.add_notifications([notification()], T0)
    [row] = store.claim_notifications("a", T0, 30.0, 1)
    dead = NotificationAttempt(T0, 410, "HTTP 410", 0.0)
    store.finish_notification(row.id, "a", dead, NotificationState.DEAD, None)
    assert store.notifications(states=[NotificationState.DEAD])[0].id == row.id
    later = T0 + timedelta(hours=1)
    assert store.replay_notifications([row.id], later) == 1
    [again] = store.notifications()
    assert again.state == NotificationState.PENDING and again.webhook_id == row.webhook_id
    assert again.next_attempt_at == later and again.attempts == 0
    assert store.notifications(since=later) == []  # since: when it was made


def test_transitions_are_a_feed_of_state_changes_across_jobs(store: SQLStore) -> None:
    a, b = make(store, "a"), make(store, "b")
    force(store, a, T0, polls=1)  # no state change: not in the feed
    force(store, b, T0, state=JobState.CANCELLED)
    feed = store.transitions(0, limit=10)
    assert [(e.job_id, e.to_state) for e in feed] == [
        (a.id, JobState.QUEUED), (b.id, JobState.QUEUED), (b.id, JobState.CANCELLED),
    ]  # fmt: skip
    assert store.transitions(feed[1].id, limit=10) == feed[2:]


def test_recent_events_are_the_newest_since_a_time_oldest_first(store: SQLStore) -> None:
    a = make(store, "a", T0)
    force(store, a, T0 + timedelta(minutes=2), polls=1)
    b = make(store, "b", T0 + timedelta(minutes=3))
    recent = store.recent_events(T0 + timedelta(minutes=1), limit=10)
    assert [(e.job_id, e.type) for e in recent] == [(a.id, "forced"), (b.id, "created")]
    assert [e.job_id for e in store.recent_events(T0, limit=1)] == [b.id]


def test_the_replay_memory_remembers_until_expiry_and_forgets_after(store: SQLStore) -> None:
    later = T0 + timedelta(minutes=5)
    assert not store.replay_known("sig:body", T0)
    store.remember_replay("sig:body", later, T0)
    store.remember_replay("sig:body", later, T0)  # a second time: a no-op
    assert store.replay_known("sig:body", T0) and store.replay_known("sig:body", later)
    assert not store.replay_known("sig:body", later + timedelta(seconds=1))
    store.remember_replay("other", later + timedelta(minutes=5), later + timedelta(seconds=1))
    assert not store.replay_known("sig:body", T0)  # the expired one was forgotten


def test_events_say_which_node_wrote_them(store: SQLStore) -> None:
    store.node = "host-a:123:abc"
    job = make(store, "by-a")
    store.node = None
    force(store, job, T0, polls=1)
    assert [e.node for e in store.events(job.id)] == ["host-a:123:abc", None]
