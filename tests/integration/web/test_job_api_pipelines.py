"""The job API takes pipelines like the CLI: after, for_each, a clear 400 for a bad one,
parents and children in every job, cancel of a tree."""

from __future__ import annotations

from typing import Any

SONG = {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": "x"}
WAV = {"taskId": "${song.task_id}", "audioId": "${song.tracks[0].id}"}


def post(rig: Any, path: str, body: Any = None) -> Any:
    return rig.client.post(path, json=body, environ_base={"REMOTE_ADDR": "127.0.0.1"})


def get(rig: Any, path: str) -> Any:
    return rig.client.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"})


def test_a_job_with_parents_waits_and_shows_its_tree(make_rig: Any) -> None:
    rig = make_rig()
    assert post(rig, "/api/jobs", {"kind": "generate_music", "params": SONG, "key": "song"})
    made = post(rig, "/api/jobs", {"kind": "wav", "params": WAV, "key": "w", "after": "song"})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["state"] == "waiting" and made.get_json()["parents"] == ["song"]
    video = {
        "kind": "music_video",
        "params": {"taskId": "${song.task_id}", "audioId": "${item.id}"},
        "key": "v",
        "after": ["song"],
        "for_each": "song.tracks",
    }
    assert post(rig, "/api/jobs", video).status_code == 201
    listed = {j["key"]: j for j in get(rig, "/api/jobs").get_json()}
    assert listed["song"]["children"] == ["w", "v"] and listed["v"]["for_each"] == "song.tracks"
    one = get(rig, "/api/jobs/w").get_json()
    assert one["why"] == "waiting for parent song (queued)"
    only = get(rig, "/api/jobs?state=waiting").get_json()
    assert sorted(j["key"] for j in only) == ["v", "w"]
    cancelled = post(rig, "/api/jobs/song/cancel?tree=1")
    assert cancelled.status_code == 200
    assert sorted(j["key"] for j in cancelled.get_json()) == ["song", "v", "w"]


def test_a_bad_pipeline_is_a_400_that_records_nothing(make_rig: Any) -> None:
    rig = make_rig()
    post(rig, "/api/jobs", {"kind": "generate_music", "params": SONG, "key": "song"})
    for body, message in (
        ({"kind": "wav", "params": WAV, "key": "w", "after": "nope"}, "no known job"),
        ({"kind": "wav", "params": WAV, "key": "w", "after": 5}, "after must be"),
        ({"kind": "wav", "params": WAV, "key": "w", "after": "song", "for_each": 1}, "for_each"),
        ({"kind": "wav", "params": WAV, "key": "w"}, "needs after"),
    ):
        answer = post(rig, "/api/jobs", body)
        assert answer.status_code == 400 and message in answer.get_json()["msg"], answer.data
    assert [j.key for j in rig.store.list_jobs()] == ["song"]
