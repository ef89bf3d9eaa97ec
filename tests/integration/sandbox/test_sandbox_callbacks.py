"""Callbacks against a real receiver on loopback: payloads, retries, give-up, signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest

from orchestrator.sandbox import SandboxConfig, SandboxServer
from orchestrator.sandbox.testing import CallbackReceiver, SandboxClient, wait_until

TRACK_KEYS = {
    "id",
    "audio_url",
    "source_audio_url",
    "stream_audio_url",
    "source_stream_audio_url",
    "image_url",
    "source_image_url",
    "prompt",
    "model_name",
    "title",
    "tags",
    "createTime",
    "duration",
}


def song_and_audio(api: SandboxClient, receiver: CallbackReceiver) -> tuple[str, str]:
    task_id, record = api.finished_song(receiver.url("/song"))
    return task_id, record["response"]["sunoData"][0]["id"]


def test_generate_sends_text_first_complete(api: SandboxClient, receiver: CallbackReceiver) -> None:
    task_id = api.generate(receiver.url())
    text, first, complete = receiver.wait_for(3, task_id)
    assert [b["data"]["callbackType"] for b in (text, first, complete)] == [
        "text",
        "first",
        "complete",
    ]
    assert text["code"] == 200 and text["data"]["data"] in ([], None)
    assert set(text["data"]) == {"callbackType", "task_id", "data"}
    one, two = first["data"]["data"]
    assert set(one) == set(two) == TRACK_KEYS
    assert one["audio_url"] and two["audio_url"] == "" and two["stream_audio_url"]
    assert complete == {
        "code": 200,
        "msg": "All generated successfully.",
        "data": {"callbackType": "complete", "task_id": task_id, "data": complete["data"]["data"]},
    }
    assert all(track["audio_url"] and track["duration"] for track in complete["data"]["data"])
    item = receiver.items(task_id)[0]
    assert item.headers["Content-Type"] == "application/json" and item.path == "/cb"
    assert "X-Webhook-Signature" not in item.headers


def test_music_error_callback(api: SandboxClient, receiver: CallbackReceiver) -> None:
    task_id = api.generate(receiver.url(), prompt="FAIL_501")
    text, error = receiver.wait_for(2, task_id)
    assert text["data"]["callbackType"] == "text"
    assert error == {
        "code": 501,
        "msg": "Audio generation failed.",
        "data": {"callbackType": "error", "task_id": task_id, "error": "Audio generation failed."},
    }
    sensitive = api.generate(receiver.url(), prompt="SENSITIVE_WORD")
    (only,) = receiver.wait_for(1, sensitive)
    assert only["code"] == 400 and only["data"]["callbackType"] == "error"


def test_replace_section_sends_only_the_outcome(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    song, audio = song_and_audio(api, receiver)
    body = {
        "taskId": song,
        "audioId": audio,
        "prompt": "p",
        "tags": "t",
        "title": "Relaxing Piano",
        "infillStartS": 1,
        "infillEndS": 7,
        "fullLyrics": "l",
        "callBackUrl": receiver.url(),
    }
    task_id = api.submit_ok("replace", body)
    api.wait_status("replace", task_id)
    (complete,) = receiver.wait_for(1, task_id)
    time.sleep(0.02)
    assert len(receiver.bodies(task_id)) == 1
    assert complete["data"]["callbackType"] == "complete"
    assert [t["title"] for t in complete["data"]["data"]] == ["Relaxing Piano"] * 2


def test_music_video_callback_is_exactly_the_seed_shape(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    song, audio = song_and_audio(api, receiver)
    task_id = api.submit_ok(
        "mp4", {"taskId": song, "audioId": audio, "callBackUrl": receiver.url()}
    )
    (body,) = receiver.wait_for(1, task_id)
    assert set(body) == {"code", "msg", "data"} and set(body["data"]) == {"task_id", "video_url"}
    assert body["code"] == 200 and body["msg"] == "MP4 generated successfully."
    assert body["data"]["video_url"].startswith(f"{api.base_url}/files/{task_id}.mp4?")


def test_music_video_failure_callback(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, audio = song_and_audio(api, receiver)
    body = {"taskId": song, "audioId": audio, "callBackUrl": receiver.url(), "author": "FAIL_451"}
    task_id = api.submit_ok("mp4", body)
    (callback,) = receiver.wait_for(1, task_id)
    assert callback == {
        "code": 451,
        "msg": "Unable to download the source audio file.",
        "data": {"task_id": task_id},
    }


def test_wav_and_vocal_removal_callbacks(api: SandboxClient, receiver: CallbackReceiver) -> None:
    song, audio = song_and_audio(api, receiver)
    body = {"taskId": song, "audioId": audio, "callBackUrl": receiver.url()}
    wav = api.submit_ok("wav", body)
    vocal = api.submit_ok("vocal", body)
    (wav_body,) = receiver.wait_for(1, wav)
    assert wav_body["msg"] == "success" and set(wav_body["data"]) == {"audioWavUrl", "task_id"}
    (vocal_body,) = receiver.wait_for(1, vocal)
    info = vocal_body["data"]["vocal_removal_info"]
    assert set(info) == {"origin_url", "instrumental_url", "vocal_url"}
    assert vocal_body["msg"] == "vocal Removal generated successfully."


def test_failed_attempts_are_retried_with_backoff(
    start_sandbox: Any, make_api: Any, profile: str, receiver: CallbackReceiver
) -> None:
    # 0.002: text's retries (after 10 ms and 20 ms) end before the first callback (60 ms)
    sandbox = start_sandbox(profile=profile, time_scale=0.002)
    api = make_api(sandbox)
    receiver.script = [500, 503]  # the text callback fails twice, then 200
    task_id = api.generate(receiver.url())
    receiver.wait_for(5, task_id)  # text x3, first, complete
    wait_until(
        lambda: len([e for e in sandbox.ledger()["callbacks"] if e["taskId"] == task_id]) == 5
    )
    attempts = [
        e for e in sandbox.ledger()["callbacks"] if e["taskId"] == task_id and e["stage"] == "text"
    ]
    assert [(e["attempt"], e.get("status"), e["ok"]) for e in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    scale = sandbox.config.time_scale
    gap_1 = attempts[1]["time"] - (attempts[0]["time"] + attempts[0]["elapsed_s"])
    gap_2 = attempts[2]["time"] - (attempts[1]["time"] + attempts[1]["elapsed_s"])
    assert gap_1 >= 5 * scale * 0.9 and gap_2 >= 10 * scale * 0.9


def test_delivery_gives_up_after_three_attempts(
    sandbox: SandboxServer, api: SandboxClient, receiver: CallbackReceiver
) -> None:
    receiver.default_status = 500
    task_id = api.generate(receiver.url())
    api.wait_status("generate", task_id, {"CALLBACK_EXCEPTION"})
    time.sleep(50 * sandbox.config.time_scale)  # well past any further backoff
    entries = [e for e in sandbox.ledger()["callbacks"] if e["taskId"] == task_id]
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_stage.setdefault(entry["stage"], []).append(entry)
    assert set(by_stage) == {"text", "first", "complete"}
    for stage_entries in by_stage.values():
        assert [e["attempt"] for e in stage_entries] == [1, 2, 3]
        assert [e["gave_up"] for e in stage_entries] == [False, False, True]
    assert len(receiver.items(task_id)) == 9


def test_timeouts_and_refused_connections_count_as_failures(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox(callback_timeout_s=0.05)
    api = make_api(sandbox)
    receiver.delay_s = 0.2
    task_id, _ = api.finished_song(receiver.url())
    wait_until(lambda: len([e for e in sandbox.ledger()["callbacks"] if e["gave_up"]]) >= 3)
    errors = {e.get("error") for e in sandbox.ledger()["callbacks"] if e["taskId"] == task_id}
    assert errors == {"ReadTimeout"}
    receiver.delay_s = 0
    closed = api.generate("http://127.0.0.1:9/nothing-listens-here")
    wait_until(
        lambda: any(e["taskId"] == closed and e["gave_up"] for e in sandbox.ledger()["callbacks"])
    )
    errors = {e.get("error") for e in sandbox.ledger()["callbacks"] if e["taskId"] == closed}
    assert errors == {"ConnectError"}


def verify_kie_signature(key: str, task_id: str, headers: dict[str, str]) -> bool:
    timestamp = headers["X-Webhook-Timestamp"]
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), headers["X-Webhook-Signature"])


def test_kie_signs_callbacks_when_a_key_is_set(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(profile="kie", hmac_key="whsec-test"))
    task_id = api.generate(receiver.url())
    items = wait_until(lambda: i if len(i := receiver.items(task_id)) >= 3 else None)
    for item in items:
        assert verify_kie_signature("whsec-test", task_id, item.headers)
        assert not verify_kie_signature("other-key", task_id, item.headers)
        assert abs(int(item.headers["X-Webhook-Timestamp"]) - time.time()) < 5
    assert all(e["signed"] for e in api.ledger()["callbacks"])


@pytest.mark.parametrize("profile_name", ["kie", "sunoapi"])
def test_no_signature_without_a_key(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver, profile_name: str
) -> None:
    api = make_api(start_sandbox(profile=profile_name))
    task_id = api.generate(receiver.url())
    items = wait_until(lambda: i if len(i := receiver.items(task_id)) >= 1 else None)
    assert "X-Webhook-Signature" not in items[0].headers
    assert "X-Webhook-Timestamp" not in items[0].headers


def test_sunoapi_refuses_an_hmac_key() -> None:
    with pytest.raises(ValueError, match="kie"):
        SandboxConfig(profile="sunoapi", hmac_key="k")
