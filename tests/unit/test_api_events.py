"""Orchestrator.events: every transition from the event log, resumable by id, by kind."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.api import Orchestrator
from orchestrator.config import Settings
from orchestrator.domain import NewEvent
from orchestrator.states import JobState
from orchestrator.stores.memory import MemoryStore

SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "p"}
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_the_feed_resumes_after_an_id_and_filters_by_kind() -> None:
    store = MemoryStore()
    orc = Orchestrator(settings=Settings(), store=store)
    song = orc.submit("generate_music", SONG, key="song")
    orc.submit("wav", {"taskId": "t", "audioId": "a"}, key="w")
    store.apply(song, {"state": JobState.CANCELLED, "updated_at": NOW},
                NewEvent("test", "x", {}), NOW)  # fmt: skip
    every = list(orc.events())
    assert [(e.key, e.state) for e in every] == [
        ("song", JobState.QUEUED), ("w", JobState.QUEUED), ("song", JobState.CANCELLED),
    ]  # fmt: skip
    assert [e.key for e in orc.events(since=every[0].id)] == ["w", "song"]
    assert [e.state for e in orc.events(kinds=["generate_music"])] == [
        JobState.QUEUED,
        JobState.CANCELLED,
    ]
    assert list(orc.events(since=every[-1].id)) == []
