"""Detail endpoints over real HTTP: every status value, field names, failure markers."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from orchestrator.sandbox import FaultSpec, SandboxServer
from orchestrator.sandbox.testing import CallbackReceiver, SandboxClient, wait_until

MUSIC_FIELDS = {
    "taskId",
    "parentMusicId",
    "param",
    "response",
    "status",
    "type",
    "operationType",
    "errorCode",
    "errorMessage",
    "createTime",
}
TRACK_FIELDS = {
    "id",
    "audioUrl",
    "sourceAudioUrl",
    "streamAudioUrl",
    "sourceStreamAudioUrl",
    "imageUrl",
    "sourceImageUrl",
    "prompt",
    "modelName",
    "title",
    "tags",
    "createTime",
    "duration",
}
MEDIA_FIELDS = {
    "taskId",
    "musicId",
    "callbackUrl",
    "audioId",
    "completeTime",
    "response",
    "successFlag",
    "createTime",
    "errorCode",
    "errorMessage",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


#: slow enough that polling every 5 ms sees every stage (text 10-20 ms, first 60-80 ms)
OBSERVABLE = 0.002


def observe(api: SandboxClient, kind: str, task_id: str) -> list[dict[str, Any]]:
    """Every distinct status record-info showed, polled every 5 ms until terminal."""
    seen: list[dict[str, Any]] = []

    def step() -> bool:
        record = api.record(kind, task_id)
        if not seen or api.status_of(seen[-1]) != api.status_of(record):
            seen.append(record)
        return api.status_of(record) not in {"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS"}

    wait_until(step, timeout=5, interval=0.005)
    return seen


def test_generate_goes_through_every_progress_status(
    start_sandbox: Any, make_api: Any, profile: str, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(profile=profile, time_scale=OBSERVABLE))
    body = {
        "customMode": False,
        "instrumental": False,
        "model": "V5",
        "prompt": "a calm piano piece",
        "callBackUrl": receiver.url(),
    }
    task_id = api.submit_ok("generate", body)
    seen = observe(api, "generate", task_id)
    assert [r["status"] for r in seen] == ["PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"]
    for record in seen:
        assert set(record) == MUSIC_FIELDS
        assert record["taskId"] == task_id
        assert json.loads(record["param"]) == body
        assert record["operationType"] == "generate" and record["type"] == "chirp-v5"
        assert record["errorCode"] is None and record["errorMessage"] is None
    pending, text, first, done = seen
    assert pending["response"] in (None, {"taskId": task_id, "sunoData": []})
    tracks = text["response"]["sunoData"]
    assert len(tracks) == 2 and all(t["audioUrl"] == t["streamAudioUrl"] == "" for t in tracks)
    one, two = first["response"]["sunoData"]
    assert one["audioUrl"] and one["streamAudioUrl"] and one["duration"] > 0
    assert two["audioUrl"] == "" and two["streamAudioUrl"] and two["duration"] is None
    for track in done["response"]["sunoData"]:
        assert set(track) == TRACK_FIELDS
        assert UUID.fullmatch(track["id"])
        assert track["audioUrl"].startswith(api.base_url + "/files/" + track["id"] + ".mp3?")
        assert track["imageUrl"].startswith(api.base_url + "/files/" + track["id"] + ".jpeg?")
        assert track["streamAudioUrl"].startswith(api.base_url + "/stream/" + track["id"] + "?")
        assert track["sourceAudioUrl"].startswith(api.base_url + "/cdn/")
        assert 60 <= track["duration"] <= 240
        assert track["modelName"] == "chirp-v5"
        assert track["prompt"].endswith("a calm piano piece")


def test_create_time_comes_in_all_three_formats(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(seed=3))
    formats = set()
    for _ in range(10):
        value = api.record("generate", api.generate(receiver.url()))["createTime"]
        if isinstance(value, int):
            formats.add("epoch_ms")
            assert value > 1_600_000_000_000
        elif "T" in value:
            formats.add("iso")
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            formats.add("datetime")
            datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    assert formats == {"epoch_ms", "iso", "datetime"}


MUSIC_MARKERS = [
    ("a song about SENSITIVE_WORD", "SENSITIVE_WORD_ERROR", 400),
    ("FAIL_CREATE", "CREATE_TASK_FAILED", 500),
    ("FAIL_400", "GENERATE_AUDIO_FAILED", 400),
    ("FAIL_408", "GENERATE_AUDIO_FAILED", 408),
    ("FAIL_413", "GENERATE_AUDIO_FAILED", 413),
    ("FAIL_500", "GENERATE_AUDIO_FAILED", 500),
    ("FAIL_501", "GENERATE_AUDIO_FAILED", 501),
    ("FAIL_531", "GENERATE_AUDIO_FAILED", 531),
]


def test_music_failures_on_demand(
    start_sandbox: Any, make_api: Any, profile: str, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(profile=profile, time_scale=OBSERVABLE))
    task_ids = [api.generate(receiver.url(), prompt=prompt) for prompt, _, _ in MUSIC_MARKERS]
    seen: dict[str, list[dict[str, Any]]] = {task_id: [] for task_id in task_ids}

    def step() -> bool:  # poll every task every 5 ms, keep each change of status
        for task_id, records in seen.items():
            record = api.record("generate", task_id)
            if not records or records[-1]["status"] != record["status"]:
                records.append(record)
        return all(r[-1]["status"] not in ("PENDING", "TEXT_SUCCESS") for r in seen.values())

    wait_until(step, timeout=5, interval=0.005)
    for task_id, (prompt, status, code) in zip(task_ids, MUSIC_MARKERS, strict=True):
        statuses = [r["status"] for r in seen[task_id]]
        if status in ("SENSITIVE_WORD_ERROR", "CREATE_TASK_FAILED"):
            assert statuses in (["PENDING", status], [status]), prompt  # at once, no progress
        else:
            # (the first tasks may be past PENDING when the polling starts)
            assert statuses in (["PENDING", "TEXT_SUCCESS", status], ["TEXT_SUCCESS", status])
        final = seen[task_id][-1]
        assert final["errorCode"] == code and final["errorMessage"], prompt
        assert final["response"] in (None, {"taskId": task_id, "sunoData": []}), prompt


def test_callback_exception_after_the_terminal_callback_gives_up(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    receiver.default_status = 500
    task_id, record = api.finished_song(receiver.url())
    record = api.wait_status("generate", task_id, {"CALLBACK_EXCEPTION"})
    assert len(record["response"]["sunoData"]) == 2  # the generation itself is fine
    assert all(track["audioUrl"] for track in record["response"]["sunoData"])
    assert record["errorCode"] is None and "Callback" in record["errorMessage"]


def test_music_video_lifecycle_and_fields(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, info = api.finished_song(receiver.url())
    audio_id = info["response"]["sunoData"][0]["id"]
    body = {"taskId": song, "audioId": audio_id, "callBackUrl": receiver.url()}
    task_id = api.submit_ok("mp4", body)
    seen = observe(api, "mp4", task_id)
    assert [r["successFlag"] for r in seen] == ["PENDING", "SUCCESS"]
    pending, done = seen
    for record in seen:
        assert set(record) == MEDIA_FIELDS
        assert record["musicId"] == song and record["audioId"] == audio_id
        assert record["callbackUrl"] == receiver.url()
    assert pending["response"] is None and pending["completeTime"] is None
    assert done["completeTime"] is not None
    assert done["response"]["videoUrl"].startswith(f"{api.base_url}/files/{task_id}.mp4?")


VIDEO_MARKERS = [
    ("FAIL_451", "GENERATE_MP4_FAILED", 451),
    ("FAIL_501", "GENERATE_MP4_FAILED", 501),
    ("FAIL_500", "GENERATE_MP4_FAILED", 500),
    ("FAIL_400", "GENERATE_MP4_FAILED", 400),
    ("FAIL_CREATE", "CREATE_TASK_FAILED", 500),
]


def test_music_video_failures_on_demand(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, info = api.finished_song(receiver.url())
    body = {
        "taskId": song,
        "audioId": info["response"]["sunoData"][0]["id"],
        "callBackUrl": receiver.url(),
    }
    # a failed music video does not block another one of the same audio
    task_ids = [api.submit_ok("mp4", {**body, "author": author}) for author, _, _ in VIDEO_MARKERS]
    for task_id, (author, flag, code) in zip(task_ids, VIDEO_MARKERS, strict=True):
        record = api.wait_status("mp4", task_id)
        assert (record["successFlag"], record["errorCode"]) == (flag, code), author
        assert record["response"] is None and record["errorMessage"], author


def test_music_video_of_an_unfinished_audio_fails_with_451(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(time_scale=0.01))
    song = api.generate(receiver.url())
    audio_id = api.ledger()["tasks"][song]["audio_ids"][1]
    body = {"taskId": song, "audioId": audio_id, "callBackUrl": receiver.url()}
    record = api.wait_status("mp4", api.submit_ok("mp4", body))
    assert (record["successFlag"], record["errorCode"]) == ("GENERATE_MP4_FAILED", 451)


def test_music_video_callback_exception(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, info = api.finished_song(receiver.url())
    receiver.default_status = 404
    body = {
        "taskId": song,
        "audioId": info["response"]["sunoData"][0]["id"],
        "callBackUrl": receiver.url(),
    }
    task_id = api.submit_ok("mp4", body)
    record = api.wait_status("mp4", task_id, {"CALLBACK_EXCEPTION"})
    assert record["response"]["videoUrl"]


def test_wav_and_vocal_removal(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, info = api.finished_song(receiver.url())
    one, two = (track["id"] for track in info["response"]["sunoData"])
    wav = api.submit_ok("wav", {"taskId": song, "audioId": one, "callBackUrl": receiver.url()})
    split = api.submit_ok(
        "vocal",
        {"taskId": song, "audioId": two, "callBackUrl": receiver.url(), "type": "split_stem"},
    )
    vocal = api.submit_ok("vocal", {"taskId": song, "audioId": one, "callBackUrl": receiver.url()})
    record = api.wait_status("wav", wav)
    assert record["successFlag"] == "SUCCESS" and set(record) == MEDIA_FIELDS
    assert record["response"]["audioWavUrl"].startswith(f"{api.base_url}/files/{wav}.wav?")
    record = api.wait_status("vocal", vocal)
    assert record["type"] == "separate_vocal"
    assert set(record["response"]) == {"originUrl", "instrumentalUrl", "vocalUrl"}
    assert f"/files/{one}.mp3?" in record["response"]["originUrl"]
    record = api.wait_status("vocal", split)
    assert record["type"] == "split_stem"
    assert {"vocalUrl", "drumsUrl", "bassUrl", "backingVocalsUrl"} <= set(record["response"])
    assert len(record["response"]) == 13


def test_wav_and_vocal_failures(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox()
    api = make_api(sandbox)
    song, info = api.finished_song(receiver.url())
    one = info["response"]["sunoData"][0]["id"]
    sandbox.set_faults(FaultSpec(fail=1.0))
    body = {"taskId": song, "audioId": one, "callBackUrl": receiver.url()}
    assert api.wait_status("wav", api.submit_ok("wav", body))["successFlag"] == (
        "GENERATE_WAV_FAILED"
    )
    record = api.wait_status("vocal", api.submit_ok("vocal", body))
    assert (record["successFlag"], record["errorCode"]) == ("GENERATE_AUDIO_FAILED", 500)
    # an unfinished source: wav fails with 400, vocal removal with 451
    sandbox.set_faults(FaultSpec())
    slow = make_api(start_sandbox(time_scale=0.01))  # a song that is still running
    fresh = slow.generate(receiver.url())
    api = slow
    audio = api.ledger()["tasks"][fresh]["audio_ids"][0]
    body = {"taskId": fresh, "audioId": audio, "callBackUrl": receiver.url()}
    wav, vocal = api.submit_ok("wav", body), api.submit_ok("vocal", body)
    assert api.wait_status("wav", wav)["errorCode"] == 400
    assert api.wait_status("vocal", vocal)["errorCode"] == 451


def test_extend_and_replace_section_records(
    start_sandbox: Any, make_api: Any, profile: str, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(profile=profile, time_scale=OBSERVABLE))
    song, info = api.finished_song(receiver.url())
    track = info["response"]["sunoData"][0]
    extend = api.submit_ok(
        "extend",
        {
            "defaultParamFlag": False,
            "audioId": track["id"],
            "model": "V4",
            "callBackUrl": receiver.url(),
        },
    )
    replace = api.submit_ok(
        "replace",
        {
            "taskId": song,
            "audioId": track["id"],
            "prompt": "new bridge",
            "tags": "jazz",
            "title": "Bridge",
            "infillStartS": 5.5,
            "infillEndS": 15.25,
            "fullLyrics": "la la",
            "callBackUrl": receiver.url(),
        },
    )
    seen = observe(api, "extend", extend)
    assert [r["status"] for r in seen] == ["PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"]
    assert seen[-1]["operationType"] == "extend" and seen[-1]["parentMusicId"] == track["id"]
    assert seen[-1]["type"] == "chirp-v4"
    assert seen[-1]["response"]["sunoData"][0]["title"] == track["title"]
    record = api.wait_status("replace", replace)
    assert record["status"] == "SUCCESS" and record["operationType"] == "replace_section"
    tracks = record["response"]["sunoData"]
    assert [t["title"] for t in tracks] == ["Bridge", "Bridge"]
    assert all(t["duration"] == track["duration"] for t in tracks)  # same length as source


def test_unknown_and_missing_task_ids(
    api: SandboxClient, receiver: CallbackReceiver, profile: str
) -> None:
    response = api.detail("generate", "0" * 32)
    assert response.status_code == 404
    assert response.json() == {"code": 404, "msg": "record not found", "data": None}
    mp4_like = api.generate(receiver.url())
    assert api.detail("mp4", mp4_like).json()["code"] == 404  # a task of another family
    response = api.client.get("/api/v1/generate/record-info")
    assert response.json()["code"] == (400 if profile == "sunoapi" else 422)
    ledger = api.ledger()
    assert ledger["polls"] == {"0" * 32: 1, mp4_like: 1}


def test_polls_are_counted_per_task(
    sandbox: SandboxServer, api: SandboxClient, receiver: CallbackReceiver
) -> None:
    task_id = api.generate(receiver.url())
    for _ in range(3):
        api.record("generate", task_id)
    ledger = sandbox.ledger()
    assert ledger["polls"] == {task_id: 3}
    assert [entry["taskId"] for entry in ledger["poll_log"]] == [task_id] * 3
    assert all(entry["code"] == 200 and entry["status"] for entry in ledger["poll_log"])
    assert ledger["tasks"][task_id]["polls"] == 3
