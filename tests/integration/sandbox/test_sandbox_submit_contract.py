"""Submit endpoints over real HTTP, both profiles: acceptance, validation, auth, limits."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from orchestrator.sandbox import SandboxServer
from orchestrator.sandbox.testing import (
    SUBMIT_PATHS,
    CallbackReceiver,
    SandboxClient,
    generate_body,
    wait_until,
)

MISSING = {"sunoapi": 400, "kie": 422}
TOO_LONG = {"sunoapi": 413, "kie": 400}
NO_CREDITS = {"sunoapi": 429, "kie": 402}
LIMITED = {"sunoapi": 430, "kie": 429}


def assert_error(response: httpx.Response, code: int, mentions: str = "") -> None:
    envelope = response.json()
    assert envelope["code"] == code, envelope
    assert response.status_code == code  # the HTTP status mirrors the code
    assert envelope["data"] is None
    assert mentions in envelope["msg"]


def test_generate_is_accepted_with_a_32_hex_task_id(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    response = api.submit("generate", generate_body(receiver.url()))
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["code"] == 200 and envelope["msg"] == "success"
    assert re.fullmatch(r"[0-9a-f]{32}", envelope["data"]["taskId"])
    assert response.headers["content-type"].startswith("application/json")


def test_every_submit_endpoint_accepts_a_valid_request(
    api: SandboxClient, receiver: CallbackReceiver, sandbox: SandboxServer
) -> None:
    task_id, record = api.finished_song(receiver.url())
    first, second = (track["id"] for track in record["response"]["sunoData"])
    bodies: dict[str, dict[str, Any]] = {
        "extend": {
            "defaultParamFlag": True,
            "audioId": first,
            "model": "V4_5",
            "continueAt": 30,
            "prompt": "more",
            "style": "jazz",
            "title": "Longer",
            "callBackUrl": receiver.url(),
        },
        "replace": replace_body(task_id, first, receiver.url()),
        "mp4": {"taskId": task_id, "audioId": first, "callBackUrl": receiver.url()},
        "wav": {"taskId": task_id, "audioId": first, "callBackUrl": receiver.url()},
        "vocal": {"taskId": task_id, "audioId": second, "callBackUrl": receiver.url()},
    }
    for kind, body in bodies.items():
        new_id = api.submit_ok(kind, body)
        assert new_id != task_id
    kinds = [entry["kind"] for entry in sandbox.ledger()["submits"]]
    assert kinds == [
        "generate_music",
        "extend",
        "replace_section",
        "music_video",
        "wav",
        "vocal_removal",
    ]


def replace_body(task_id: str, audio_id: str, url: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskId": task_id,
        "audioId": audio_id,
        "prompt": "a softer bridge",
        "tags": "jazz",
        "title": "Relaxing Piano",
        "infillStartS": 10.0,
        "infillEndS": 20.5,
        "fullLyrics": "[Verse] ...",
        "callBackUrl": url,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("kind", sorted(SUBMIT_PATHS))
def test_missing_callback_url_is_refused_on_every_endpoint(
    api: SandboxClient, profile: str, kind: str
) -> None:
    response = api.submit(kind, {"taskId": "x", "audioId": "y", "prompt": "p"})
    assert_error(response, MISSING[profile], "callBackUrl")
    assert api.submit(kind, {"callBackUrl": ""}).json()["code"] == MISSING[profile]


GENERATE_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"customMode": None}, "missing"),
    ({"instrumental": "no"}, "invalid"),
    ({"model": "V9"}, "invalid"),
    ({"model": None}, "missing"),
    ({"prompt": ""}, "missing"),
    ({"prompt": "x" * 501}, "too_long"),
    ({"callBackUrl": "ftp://example"}, "invalid"),
    ({"vocalGender": "x"}, "invalid"),
    ({"styleWeight": 1.5}, "invalid"),
    ({"customMode": True, "style": "jazz"}, "missing"),  # title missing
    ({"customMode": True, "title": "T", "style": "s" * 1001}, "too_long"),
    ({"customMode": True, "title": "T" * 81, "style": "jazz", "model": "V4"}, "too_long"),
    ({"customMode": True, "title": "T", "style": "s", "prompt": "p" * 5001}, "too_long"),
]


def test_generate_validation(api: SandboxClient, receiver: CallbackReceiver, profile: str) -> None:
    expected = {"missing": MISSING[profile], "invalid": 400, "too_long": TOO_LONG[profile]}
    for change, reason in GENERATE_REFUSALS:
        body = generate_body(receiver.url())
        body.update(change)
        response = api.submit("generate", body)
        assert response.json()["code"] == expected[reason], change
        assert_error(response, expected[reason])
    assert api.ledger()["tasks"] == {}


def test_custom_mode_limits_depend_on_the_model(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    body = generate_body(
        receiver.url(), customMode=True, instrumental=True, title="T" * 100, style="s" * 1000
    )
    api.submit_ok("generate", body)  # V4_5 allows 100 / 1000
    api.submit_ok("generate", {**body, "title": "T" * 80, "style": "s" * 200, "model": "V4"})


def test_body_that_is_not_a_json_object_is_refused(api: SandboxClient) -> None:
    response = api.client.post(SUBMIT_PATHS["generate"], content=b"not json")
    assert_error(response, 400)
    assert api.client.post(SUBMIT_PATHS["generate"], json=[1, 2]).json()["code"] == 400


def test_replace_section_window_rules(
    api: SandboxClient, receiver: CallbackReceiver, profile: str
) -> None:
    task_id, record = api.finished_song(receiver.url())
    track = record["response"]["sunoData"][0]
    url = receiver.url()
    refused = [
        {"taskId": "f" * 32},  # unknown task
        {"audioId": "00000000-0000-4000-8000-000000000000"},  # unknown audio
        {"infillStartS": 20.0, "infillEndS": 10.0},  # start after end
        {"infillStartS": 10.0, "infillEndS": 15.0},  # window under 6 s
        {"infillStartS": 0.0, "infillEndS": 61.0},  # window over 60 s
        {"infillStartS": 10.123, "infillEndS": 20.0},  # more than 2 decimals
        {"infillStartS": -1.0, "infillEndS": 10.0},
        {"infillEndS": "20"},
        {"infillStartS": track["duration"] - 10, "infillEndS": track["duration"] + 5},
    ]
    for change in refused:
        response = api.submit("replace", replace_body(task_id, track["id"], url, **change))
        assert_error(response, 400)
    for name in ("prompt", "tags", "title", "fullLyrics", "taskId", "audioId"):
        response = api.submit("replace", replace_body(task_id, track["id"], url, **{name: ""}))
        assert_error(response, MISSING[profile], name)
    api.submit_ok("replace", replace_body(task_id, track["id"], url))


def test_replace_window_must_not_exceed_half_the_track(
    make_api: Any, start_sandbox: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(seed=0))
    task_ids = [api.generate(receiver.url()) for _ in range(8)]
    short = None
    for task_id in task_ids:  # durations are 60-240 s: with seed 0 one of these is < 110 s
        record = api.wait_status("generate", task_id, {"SUCCESS", "CALLBACK_EXCEPTION"})
        for track in record["response"]["sunoData"]:
            if track["duration"] < 110:
                short = (task_id, track)
    assert short is not None, "no track under 110 s within 8 songs for seed 0"
    task_id, track = short
    window = round(track["duration"] / 2 + 1, 2)
    body = replace_body(task_id, track["id"], receiver.url(), infillStartS=0, infillEndS=window)
    assert_error(api.submit("replace", body), 400, "infillEndS")


def test_sources_must_be_finished_for_replace_and_extend(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(time_scale=0.01))  # the song takes over 0.6 s
    task_id = api.generate(receiver.url())
    record = api.record("generate", task_id)
    assert record["status"] == "PENDING"
    # the audio ids are not known yet from record-info: take them from the ledger
    audio_id = api.ledger()["tasks"][task_id]["audio_ids"][0]
    assert_error(api.submit("replace", replace_body(task_id, audio_id, receiver.url())), 400)
    body = {"defaultParamFlag": False, "audioId": audio_id, "model": "V4_5"}
    assert_error(api.submit("extend", {**body, "callBackUrl": receiver.url()}), 400, "audioId")


def test_extend_validation(api: SandboxClient, receiver: CallbackReceiver, profile: str) -> None:
    _, record = api.finished_song(receiver.url())
    track = record["response"]["sunoData"][0]
    base = {
        "defaultParamFlag": True,
        "audioId": track["id"],
        "model": "V4_5",
        "continueAt": 30,
        "prompt": "more",
        "style": "jazz",
        "title": "Longer",
        "callBackUrl": receiver.url(),
    }
    assert_error(api.submit("extend", {**base, "continueAt": None}), MISSING[profile])
    assert_error(api.submit("extend", {**base, "continueAt": track["duration"] + 1}), 400)
    assert_error(api.submit("extend", {**base, "defaultParamFlag": None}), MISSING[profile])
    assert_error(api.submit("extend", {**base, "audioId": "nope"}), 400, "audioId")
    api.submit_ok(
        "extend",
        {
            "defaultParamFlag": False,
            **{k: base[k] for k in base if k in ("audioId", "model", "callBackUrl")},
        },
    )


def test_second_music_video_of_one_audio_is_a_conflict(
    api: SandboxClient, receiver: CallbackReceiver, profile: str
) -> None:
    task_id, record = api.finished_song(receiver.url())
    audio_id = record["response"]["sunoData"][0]["id"]
    body = {"taskId": task_id, "audioId": audio_id, "callBackUrl": receiver.url()}
    api.submit_ok("mp4", body)
    assert_error(api.submit("mp4", body), 409, "already exists")
    # the other track of the same song is another audio
    other = record["response"]["sunoData"][1]["id"]
    api.submit_ok("mp4", {**body, "audioId": other})
    api.submit_ok("wav", body)
    assert_error(api.submit("wav", body), 409)


def test_a_failed_music_video_may_be_retried(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    task_id, record = api.finished_song(receiver.url())
    audio_id = record["response"]["sunoData"][0]["id"]
    body = {"taskId": task_id, "audioId": audio_id, "callBackUrl": receiver.url()}
    failing = api.submit_ok("mp4", {**body, "author": "FAIL_451"})
    api.wait_status("mp4", failing)
    api.submit_ok("mp4", body)


def test_music_video_references_and_lengths(
    api: SandboxClient, receiver: CallbackReceiver, profile: str
) -> None:
    task_id, record = api.finished_song(receiver.url())
    audio_id = record["response"]["sunoData"][0]["id"]
    body = {"taskId": task_id, "audioId": audio_id, "callBackUrl": receiver.url()}
    assert_error(api.submit("mp4", {**body, "taskId": "0" * 32}), 400, "taskId")
    assert_error(api.submit("mp4", {**body, "audioId": "nope"}), 400, "audioId")
    assert_error(api.submit("mp4", {**body, "author": "a" * 51}), TOO_LONG[profile])
    assert_error(api.submit("mp4", {**body, "domainName": "d" * 51}), TOO_LONG[profile])
    assert_error(api.submit("mp4", {**body, "audioId": None}), MISSING[profile], "audioId")
    assert_error(api.submit("vocal", {**body, "type": "karaoke"}), 400, "type")
    # an audio of another task does not belong to this taskId
    other_task, other = api.finished_song(receiver.url())
    other_audio = other["response"]["sunoData"][0]["id"]
    assert_error(api.submit("mp4", {**body, "audioId": other_audio}), 400, "audioId")
    assert other_task != task_id


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic sandbox-key", "sandbox-key"])
def test_every_api_endpoint_requires_the_bearer_key(
    sandbox: SandboxServer, receiver: CallbackReceiver, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=sandbox.url, headers=headers) as client:
        for path in SUBMIT_PATHS.values():
            assert_error(client.post(path, json=generate_body(receiver.url())), 401)
        assert_error(client.get("/api/v1/generate/record-info", params={"taskId": "x"}), 401)
        assert_error(client.get("/api/v1/mp4/record-info", params={"taskId": "x"}), 401)
        assert_error(client.get("/api/v1/generate/credit"), 401)
    ledger = sandbox.ledger()
    assert ledger["tasks"] == {}
    assert all(not entry["api_key_ok"] for entry in ledger["submits"])
    assert {entry["code"] for entry in ledger["rejected"]} == {401}


def test_the_real_rate_limit_admits_20_submits_per_10_s(
    api: SandboxClient, receiver: CallbackReceiver, profile: str, sandbox: SandboxServer
) -> None:
    answers = [api.submit("generate", generate_body(receiver.url())) for _ in range(25)]
    codes = [answer.json()["code"] for answer in answers]
    assert codes == [200] * 20 + [LIMITED[profile]] * 5
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].status_code == LIMITED[profile]
    ledger = sandbox.ledger()
    assert len(ledger["tasks"]) == 20
    assert sum("limit" in entry["faults"] for entry in ledger["submits"]) == 5


def test_the_rate_limit_window_slides(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(rate_limit_count=3, rate_limit_window_s=0.3))
    codes = [api.submit("generate", generate_body(receiver.url())).json()["code"] for _ in range(4)]
    assert codes == [200, 200, 200, 430]
    wait_until(lambda: api.submit("generate", generate_body(receiver.url())).json()["code"] == 200)


def test_credits_run_out_and_531_refunds(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver, profile: str
) -> None:
    api = make_api(start_sandbox(profile=profile, credits=30))
    assert api.client.get("/api/v1/generate/credit").json() == {
        "code": 200,
        "msg": "success",
        "data": 30,
    }
    api.generate(receiver.url())
    failing = api.generate(receiver.url(), prompt="FAIL_531 please")
    assert api.client.get("/api/v1/generate/credit").json()["data"] == 6
    assert_error(api.submit("generate", generate_body(receiver.url())), NO_CREDITS[profile])
    record = api.wait_status("generate", failing)
    assert record["status"] == "GENERATE_AUDIO_FAILED" and record["errorCode"] == 531
    assert api.client.get("/api/v1/generate/credit").json()["data"] == 18
    api.generate(receiver.url())


def test_unknown_paths_and_methods_answer_with_an_envelope(api: SandboxClient) -> None:
    response = api.client.get("/api/v1/nothing")
    assert response.status_code == 404 and response.json()["code"] == 404
    response = api.client.get(SUBMIT_PATHS["generate"])
    assert response.status_code == 405 and response.json()["code"] == 405
