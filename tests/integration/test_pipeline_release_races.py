"""Several daemons' releasers on one database (SQLite file, PostgreSQL): a waiting job is
released once and a for_each job's children are recorded once, however the ticks interleave."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from orchestrator.daemon.releaser import Releaser
from orchestrator.domain import NewEvent
from orchestrator.service import JobService
from orchestrator.states import JobState
from orchestrator.stores.sql import SQLStore
from tests.integration.conftest import SharedDatabase

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "piano"}
TRACKS = {"tracks": [{"id": f"a-{n}"} for n in range(5)]}
DAEMONS = 4


@pytest.fixture
def stores(shared_db: SharedDatabase) -> list[SQLStore]:
    return shared_db.open(DAEMONS)  # one store per daemon


def test_many_releasers_release_once_and_make_each_child_once(stores: list[SQLStore]) -> None:
    service = JobService(stores[0], provider="sunoapi", clock=lambda: NOW)
    service.submit("generate_music", SONG, "song")
    service.submit(
        "music_video",
        {"taskId": "${song.task_id}", "audioId": "${item.id}"},
        "video",
        after="song",
        for_each="song.tracks",
    )
    service.submit("wav", {"taskId": "${song.task_id}", "audioId": "a"}, "w", after="song")
    song = stores[0].get_job_by_key("song")
    done = {"state": JobState.COMPLETED, "task_id": "t", "result": TRACKS, "updated_at": NOW}
    stores[0].apply(song, done, NewEvent("test", "forced", {}), NOW)

    start = threading.Barrier(DAEMONS)
    errors: list[BaseException] = []

    def daemon(store: SQLStore) -> None:
        releaser = Releaser(
            store,
            JobService(store, provider="sunoapi", clock=lambda: NOW).reconciler,
            clock=lambda: NOW,
            stop=threading.Event(),
        )
        try:
            start.wait()
            for _ in range(5):
                releaser.wake()
                releaser.tick()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=daemon, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    jobs = {job.key: job for job in stores[0].list_jobs()}
    assert sorted(jobs) == sorted(["song", "video", "w", *[f"video.{n}" for n in range(5)]])
    assert jobs["w"].state == JobState.QUEUED
    released = [e for e in stores[0].events(jobs["w"].id) if e.type == "parents_completed"]
    assert [e.to_state for e in released if e.to_state] == [JobState.QUEUED]
    recorded = [e for e in stores[0].events(jobs["video"].id) if e.type == "children_recorded"]
    assert [e.to_state for e in recorded if e.to_state] == [JobState.WAITING]
    for n in range(5):
        child = jobs[f"video.{n}"]
        assert child.state == JobState.QUEUED and child.params["audioId"] == f"a-{n}"
        assert [e.type for e in stores[0].events(child.id)] == ["created"]
