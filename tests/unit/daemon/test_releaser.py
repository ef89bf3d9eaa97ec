"""The releaser on the in-memory store: released once, children made once (also after a
crash between making them and marking the for_each job), failures run down a whole pipeline
in one tick, a retry revives it, and an idle releaser does not look at every tick."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.daemon.releaser import Releaser
from orchestrator.domain import JobError, NewEvent, NewJob
from orchestrator.service import JobService
from orchestrator.states import JobState
from orchestrator.stores.memory import MemoryStore

S = JobState
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "piano"}
RESULT = {"tracks": [{"id": "a-1", "duration": 30.0}, {"id": "a-2", "duration": 41.5}]}


class Rig:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.service = JobService(self.store, provider="sunoapi", clock=lambda: NOW)
        self.mono = [0.0]
        self.releaser = Releaser(
            self.store,
            self.service.reconciler,
            clock=lambda: NOW,
            stop=threading.Event(),
            sweep_s=5.0,
            monotonic=lambda: self.mono[0],
        )

    def submit(self, kind: str, params: dict[str, Any], key: str, **kw: Any) -> None:
        self.service.submit(kind, params, key, **kw)

    def finish(self, key: str, state: JobState = S.COMPLETED, **changes: Any) -> None:
        job = self.store.get_job_by_key(key)
        values: dict[str, Any] = {"state": state, "updated_at": NOW, **changes}
        if state == S.COMPLETED:
            values.setdefault("task_id", f"task-{key}")
            values.setdefault("result", RESULT)
        if state == S.FAILED:
            values.setdefault("error", JobError("upstream", 501, "generation failed"))
        self.store.apply(job, values, NewEvent("test", "forced", {}), NOW)

    def states(self) -> dict[str, str]:
        return {j.key: j.state.value for j in self.store.list_jobs()}

    def tick(self) -> int:
        self.releaser.wake()
        return self.releaser.tick()


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.submit("generate_music", SONG, "song")
    r.submit(
        "music_video",
        {"taskId": "${song.task_id}", "audioId": "${item.id}"},
        "video",
        after="song",
        for_each="song.tracks",
    )
    r.submit(
        "wav", {"taskId": "${song.task_id}", "audioId": "${song.tracks[1].id}"}, "w", after="song"
    )
    r.submit("wav", {"taskId": "${w.task_id}", "audioId": "x"}, "w2", after=["w"])
    return r


def test_nothing_moves_while_the_parent_runs(rig: Rig) -> None:
    assert rig.tick() == 0
    assert rig.states() == {"song": "queued", "video": "waiting", "w": "waiting", "w2": "waiting"}


def test_released_once_with_resolved_params_and_children_made_once(rig: Rig) -> None:
    rig.finish("song")
    assert rig.tick() == 2  # w released, video expanded
    w = rig.store.get_job_by_key("w")
    assert w.state == S.QUEUED and w.params == {"taskId": "task-song", "audioId": "a-2"}
    assert w.template == {"taskId": "${song.task_id}", "audioId": "${song.tracks[1].id}"}
    assert rig.store.get_job_by_key("video").result == {"children": ["video.0", "video.1"]}
    assert rig.tick() == 0  # a second look changes nothing
    assert sorted(rig.states()) == ["song", "video", "video.0", "video.1", "w", "w2"]
    kinds = [e.type for e in rig.store.events(w.id)]
    assert kinds.count("parents_completed") == 1


def test_a_crash_between_making_children_and_marking_the_for_each_job(rig: Rig) -> None:
    rig.finish("song")
    # a daemon died after recording video.0 only: the next tick makes video.1, reuses video.0
    made, _ = rig.store.create_job(
        NewJob("video.0", "music_video", {"audioId": "a-1", "taskId": "task-song"},
               "sunoapi", after=("video",), resolved=True),
        NOW,
    )  # fmt: skip
    rig.tick()
    assert rig.store.get_job_by_key("video.0").id == made.id
    assert rig.store.get_job_by_key("video.1").state == S.QUEUED


def test_the_for_each_job_completes_with_its_children_or_fails_with_one(rig: Rig) -> None:
    rig.finish("song")
    rig.tick()
    rig.finish("video.0")
    rig.tick()
    assert rig.states()["video"] == "waiting"
    rig.finish("video.1", S.FAILED)
    rig.tick()
    video = rig.store.get_job_by_key("video")
    assert video.state == S.FAILED and video.error is not None
    assert video.error.stage == "dependency" and "'video.1'" in video.error.message
    rig.service.retry("video")  # retries the child that failed, and waits for it again
    assert rig.states()["video"] == "waiting" and rig.states()["video.1"] == "queued"
    rig.finish("video.1")
    rig.tick()
    assert rig.states()["video"] == "completed"


def test_a_failure_runs_down_the_whole_pipeline_in_one_tick_and_retry_revives_it(
    rig: Rig,
) -> None:
    rig.finish("song", S.FAILED)
    rig.tick()
    states = rig.states()
    assert states == {"song": "failed", "video": "failed", "w": "failed", "w2": "failed"}
    w2 = rig.store.get_job_by_key("w2")
    assert w2.error is not None and w2.error.code == "parent_failed"
    assert "'w'" in w2.error.message
    rig.service.retry("song")
    assert rig.states() == {"song": "queued", "video": "waiting", "w": "waiting", "w2": "waiting"}


def test_a_reference_the_result_cannot_satisfy_fails_without_a_submit() -> None:
    r = Rig()
    r.submit("generate_music", SONG, "song")
    r.submit("wav", {"taskId": "t", "audioId": "${song.tracks[5].id}"}, "w", after="song")
    r.finish("song")
    r.tick()
    w = r.store.get_job_by_key("w")
    assert w.state == S.FAILED and w.error is not None and w.error.code == "bad_reference"
    assert "no item [5] (the list has 2)" in w.error.message and w.submit_attempts == 0


def test_an_idle_releaser_looks_only_when_woken_or_every_sweep(rig: Rig) -> None:
    assert rig.releaser.tick() == 0  # the first tick looks (and finds nothing to do)
    rig.finish("song")
    assert rig.releaser.tick() == 0  # not woken, the sweep not due: no look
    rig.mono[0] = 5.0
    assert rig.releaser.tick() == 2  # the sweep
    rig.finish("w")
    rig.releaser.wake()
    assert rig.releaser.tick() == 1  # woken: w2 released at once


def test_show_explains_a_for_each_job_before_and_after(rig: Rig) -> None:
    assert rig.service.detail("video").why == "waiting for parent song (queued)"
    rig.finish("song")
    rig.tick()
    assert rig.service.detail("video").why.startswith("waiting for children video.0 (queued)")
    rig.finish("video.0")
    rig.finish("video.1")
    rig.tick()
    detail = rig.service.detail("video")
    assert detail.why == "done: every child completed (video.0, video.1)"
    assert detail.children == ("video.0", "video.1")
