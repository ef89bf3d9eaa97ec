"""pipeline.completed: told once per pipeline, once its root and every job below completed;
never for a lone job; again after a restart if the cursor had not moved past it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.daemon.pipeline_watch import RECORD, PipelineWatch
from orchestrator.domain import NewEvent
from orchestrator.notifications import Target
from orchestrator.service import JobService
from orchestrator.states import JobState
from orchestrator.stores.memory import MemoryStore

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "p"}
APP = Target("app", url="http://127.0.0.1:1/", events=("job.completed", "pipeline.completed"))
OTHER = Target("other", url="http://127.0.0.1:2/")  # does not ask for it


def complete(store: MemoryStore, key: str, **changes: Any) -> None:
    job = store.get_job_by_key(key)
    values = {"state": JobState.COMPLETED, "updated_at": NOW, **changes}
    store.apply(job, values, NewEvent("test", "forced", {}), NOW)


def rig() -> tuple[MemoryStore, PipelineWatch, list[datetime]]:
    store = MemoryStore()
    service = JobService(store, provider="sunoapi", clock=lambda: NOW)
    service.submit("generate_music", SONG, "song")
    service.submit("wav", {"taskId": "${song.task_id}", "audioId": "a"}, "w", after="song")
    service.submit("generate_music", SONG, "alone")
    now = [NOW]
    watch = PipelineWatch(store, (APP, OTHER), clock=lambda: now[0], stop=threading.Event())
    return store, watch, now


def test_told_once_when_the_whole_pipeline_completed() -> None:
    store, watch, now = rig()
    complete(store, "alone")
    complete(store, "song", task_id="t")
    assert watch.tick() == 0  # w still waiting; a lone job is no pipeline
    complete(store, "w")
    assert watch.tick() == 1
    [row] = [n for n in store.notifications() if n.event == "pipeline.completed"]
    assert row.target == "app" and row.job_id == store.get_job_by_key("song").id
    assert row.body["data"]["key"] == "song" and row.body["data"]["pipeline"] == [
        {"key": "w", "kind": "wav"}
    ]
    assert watch.tick() == 0  # never twice
    now[0] = NOW + timedelta(minutes=5)
    assert watch.tick() == 0
    assert store.account(RECORD) is not None  # the cursor moved past the settled feed


def test_after_a_restart_it_is_still_told() -> None:
    store, watch, _now = rig()
    complete(store, "song", task_id="t")
    complete(store, "w")
    fresh = PipelineWatch(store, (APP,), clock=lambda: NOW, stop=threading.Event())
    assert fresh.tick() == 1  # a new process: the cursor (none yet) covers it
    assert watch.tick() == 0  # and the old one does not tell it again
