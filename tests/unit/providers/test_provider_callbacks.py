"""SunoProvider.parse_callback: the seed payloads, every stage, field-name styles, a rejection
per malformed shape, and a property: any JSON value gives a report or CallbackRejected."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.exceptions import CallbackRejected
from orchestrator.observations import Track, UpstreamReport, UpstreamStatus
from orchestrator.providers import SunoProvider, get_profile

PROFILES = ["sunoapi", "kie"]
KINDS = ["generate_music", "replace_section", "music_video"]

# --- seed payloads, verbatim from /work/shared/seeds ------------------------------------------

#: 000: Music Video Generation, success callback
SEED_MP4_SUCCESS = {
    "code": 200,
    "msg": "MP4 generated successfully.",
    "data": {
        "task_id": "taskId_774b9aa0422f",
        "video_url": "https://example.com/videos/video_847715e66259.mp4",
    },
}

#: 003: Replace Music Section, success callback
SEED_REPLACE_SUCCESS = {
    "code": 200,
    "msg": "All generated successfully.",
    "data": {
        "callbackType": "complete",
        "task_id": "2fac****9f72",
        "data": [
            {
                "id": "e231****-****-****-****-****8cadc7dc",
                "audio_url": "https://example.cn/****.mp3",
                "stream_audio_url": "https://example.cn/****",
                "image_url": "https://example.cn/****.jpeg",
                "prompt": "A calm and relaxing piano track.",
                "model_name": "chirp-v3-5",
                "title": "Relaxing Piano",
                "tags": "Jazz",
                "createTime": "2025-01-01 00:00:00",
                "duration": 198.44,
            }
        ],
    },
}

#: 003: Replace Music Section, failure callback
SEED_REPLACE_FAILURE = {
    "code": 501,
    "msg": "Audio generation failed.",
    "data": {
        "callbackType": "error",
        "task_id": "2fac****9f72",
        "error": "Generation failed due to technical issues",
    },
}

#: a real `first` callback as described in UPSTREAM_API.md: both tracks, the second with
#: audio_url "" and only a stream URL, createTime in epoch milliseconds
FIRST_CALLBACK = {
    "code": 200,
    "msg": "First generated successfully.",
    "data": {
        "callbackType": "first",
        "task_id": "5c79a1b2c3d4e5f60718293a4b5c6d7e",
        "data": [
            {
                "id": "8551aaaa-0000-1111-2222-333344445555",
                "audio_url": "https://cdn.example/8551.mp3",
                "source_audio_url": "https://cdn1.suno.ai/8551.mp3",
                "stream_audio_url": "https://cdn.example/s/8551",
                "source_stream_audio_url": "https://audiopipe.suno.ai/?item_id=8551",
                "image_url": "https://cdn.example/8551.jpeg",
                "source_image_url": "https://cdn2.suno.ai/8551.jpeg",
                "prompt": "[Verse] ...",
                "model_name": "chirp-v4-5",
                "title": "Night Drive",
                "tags": "synthwave",
                "createTime": 1735689600000,
                "duration": 187.6,
            },
            {
                "id": "bd15bbbb-6666-7777-8888-9999aaaabbbb",
                "audio_url": "",
                "source_audio_url": "",
                "stream_audio_url": "https://cdn.example/s/bd15",
                "source_stream_audio_url": "https://audiopipe.suno.ai/?item_id=bd15",
                "image_url": "",
                "source_image_url": "https://cdn2.suno.ai/bd15.jpeg",
                "prompt": "[Verse] ...",
                "model_name": "chirp-v4-5",
                "title": "Night Drive",
                "tags": "synthwave",
                "createTime": 1735689601000,
                "duration": None,
            },
        ],
    },
}


@pytest.fixture(params=PROFILES)
def provider(request: pytest.FixtureRequest, api_key: str) -> Any:
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        yield SunoProvider(
            client, get_profile(request.param), base_url="https://x.test", api_key=api_key
        )


def with_data(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["data"].update(changes)
    return out


# --- seeds -----------------------------------------------------------------------------------


def test_seed_mp4_success(provider):
    report = provider.parse_callback("music_video", SEED_MP4_SUCCESS)
    assert report == UpstreamReport(
        status=UpstreamStatus.SUCCESS,
        task_id="taskId_774b9aa0422f",
        video_url="https://example.com/videos/video_847715e66259.mp4",
        files=(("video", "https://example.com/videos/video_847715e66259.mp4"),),
        raw_status="200",
    )


@pytest.mark.parametrize("code", [400, 451, 500])
def test_seed_mp4_failure_codes(provider, code):
    body = {"code": code, "msg": "Unable to download source audio", "data": {"task_id": "t1"}}
    report = provider.parse_callback("music_video", body)
    assert report.status is UpstreamStatus.FAILED
    assert report.error_code == code
    assert report.error_message == "Unable to download source audio"
    assert report.task_id == "t1"


@pytest.mark.parametrize("video_url", [None, ""])
def test_mp4_success_code_without_url_is_pending(provider, video_url):
    body = with_data(SEED_MP4_SUCCESS, video_url=video_url)
    assert provider.parse_callback("music_video", body).status is UpstreamStatus.PENDING


@pytest.mark.parametrize("kind", ["replace_section", "generate_music"])
def test_seed_replace_section_success(provider, kind):
    report = provider.parse_callback(kind, SEED_REPLACE_SUCCESS)
    assert report.status is UpstreamStatus.SUCCESS
    assert report.raw_status == "complete"
    assert report.task_id == "2fac****9f72"
    assert report.tracks == (
        Track(
            id="e231****-****-****-****-****8cadc7dc",
            audio_url="https://example.cn/****.mp3",
            stream_url="https://example.cn/****",
            image_url="https://example.cn/****.jpeg",
            title="Relaxing Piano",
            tags="Jazz",
            duration=198.44,
            model="chirp-v3-5",
            created_at="2025-01-01T00:00:00Z",
        ),
    )
    assert report.error_code is None


def test_seed_replace_section_failure(provider):
    report = provider.parse_callback("replace_section", SEED_REPLACE_FAILURE)
    assert report.status is UpstreamStatus.FAILED
    assert report.error_code == 501
    assert report.error_message == "Generation failed due to technical issues"
    assert report.raw_status == "error"
    assert report.tracks == ()


def test_first_callback_with_a_streaming_second_track(provider):
    report = provider.parse_callback("generate_music", FIRST_CALLBACK)
    assert report.status is UpstreamStatus.FIRST_SUCCESS
    first, second = report.tracks
    assert first.audio_url == "https://cdn.example/8551.mp3"  # not the source_ one
    assert first.created_at == "2025-01-01T00:00:00Z"
    assert second.audio_url is None  # "" and source "" -> None
    assert second.stream_url == "https://cdn.example/s/bd15"
    assert second.image_url == "https://cdn2.suno.ai/bd15.jpeg"  # source_ fallback
    assert second.created_at == "2025-01-01T00:00:01Z"
    assert second.duration is None


# --- stages and variants ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callback_type", "tracks", "expected"),
    [
        ("text", None, UpstreamStatus.TEXT_SUCCESS),
        ("text", [], UpstreamStatus.TEXT_SUCCESS),
        ("first", FIRST_CALLBACK["data"]["data"], UpstreamStatus.FIRST_SUCCESS),
        ("complete", FIRST_CALLBACK["data"]["data"], UpstreamStatus.SUCCESS),
        ("error", None, UpstreamStatus.FAILED),
    ],
)
def test_music_stages(provider, callback_type, tracks, expected):
    body = with_data(FIRST_CALLBACK, callbackType=callback_type, data=tracks)
    report = provider.parse_callback("generate_music", body)
    assert report.status is expected
    assert report.raw_status == callback_type


def test_error_stage_with_code_200_has_no_error_code(provider):
    body = with_data(FIRST_CALLBACK, callbackType="error", data=None)
    report = provider.parse_callback("generate_music", body)
    assert report.status is UpstreamStatus.FAILED
    assert report.error_code is None
    assert report.error_message == "First generated successfully."


@pytest.mark.parametrize("code", [400, 408, 413, 500, 501, 531])
def test_non_200_code_fails_whatever_the_stage(provider, code):
    body = {"code": code, "msg": "Timeout", "data": {"callbackType": "complete", "task_id": "t"}}
    report = provider.parse_callback("generate_music", body)
    assert report.status is UpstreamStatus.FAILED
    assert report.error_code == code
    assert report.error_message == "Timeout"


def test_error_callback_without_callback_type_is_accepted(provider):
    body = {"code": 531, "msg": "Credits refunded", "data": {"task_id": "t", "data": None}}
    report = provider.parse_callback("generate_music", body)
    assert (report.status, report.error_code, report.raw_status) == (
        UpstreamStatus.FAILED,
        531,
        "531",
    )


def test_lyrics_style_camel_case_task_id(provider):
    body = copy.deepcopy(SEED_REPLACE_SUCCESS)
    body["data"]["taskId"] = body["data"].pop("task_id")
    assert provider.parse_callback("generate_music", body).task_id == "2fac****9f72"


def test_source_urls_are_a_fallback(provider):
    track = {
        "id": "a1",
        "source_audio_url": "https://src/a1.mp3",
        "stream_audio_url": "",
        "source_stream_audio_url": "https://src/stream/a1",
        "image_url": None,
        "source_image_url": "https://src/a1.jpeg",
    }
    body = with_data(FIRST_CALLBACK, callbackType="complete", data=[track])
    (got,) = provider.parse_callback("generate_music", body).tracks
    assert got.audio_url == "https://src/a1.mp3"
    assert got.stream_url == "https://src/stream/a1"
    assert got.image_url == "https://src/a1.jpeg"


def test_missing_msg_is_tolerated(provider):
    body = copy.deepcopy(SEED_MP4_SUCCESS)
    del body["msg"]
    assert provider.parse_callback("music_video", body).status is UpstreamStatus.SUCCESS


def test_duplicate_callbacks_give_equal_reports(provider):
    one = provider.parse_callback("replace_section", SEED_REPLACE_SUCCESS)
    two = provider.parse_callback("replace_section", copy.deepcopy(SEED_REPLACE_SUCCESS))
    assert one == two


# --- rejections ------------------------------------------------------------------------------

MUSIC_BAD = [
    pytest.param([], "JSON object", id="body-list"),
    pytest.param("complete", "JSON object", id="body-string"),
    pytest.param(None, "JSON object", id="body-null"),
    pytest.param(200, "JSON object", id="body-int"),
    pytest.param({}, "code", id="empty-object"),
    pytest.param({**SEED_REPLACE_SUCCESS, "code": "200"}, "code", id="code-string"),
    pytest.param({**SEED_REPLACE_SUCCESS, "code": True}, "code", id="code-bool"),
    pytest.param({**SEED_REPLACE_SUCCESS, "code": 200.0}, "code", id="code-float"),
    pytest.param({**SEED_REPLACE_SUCCESS, "code": 10**400}, "out of range", id="code-huge"),
    pytest.param({**SEED_REPLACE_SUCCESS, "code": -1}, "out of range", id="code-negative"),
    pytest.param({**SEED_REPLACE_SUCCESS, "msg": 5}, "msg", id="msg-int"),
    pytest.param({"code": 200, "msg": "ok"}, "data", id="data-missing"),
    pytest.param({"code": 200, "msg": "ok", "data": []}, "data", id="data-list"),
    pytest.param({"code": 200, "msg": "ok", "data": "x"}, "data", id="data-string"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, task_id=None), "task_id", id="task-id-null"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, task_id=""), "task_id", id="task-id-empty"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, task_id=7), "task_id", id="task-id-int"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, task_id="x" * 500), "task_id", id="task-id-long"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, callbackType="done"), "callbackType", id="type"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, callbackType=None), "callbackType", id="no-type"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, callbackType=3), "callbackType", id="type-int"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data="x"), "data.data", id="tracks-string"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data={"id": "a"}), "data.data", id="tracks-obj"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data=[None]), "object", id="track-null"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data=["a"]), "object", id="track-string"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data=[{"title": "t"}]), "id", id="track-no-id"),
    pytest.param(with_data(SEED_REPLACE_SUCCESS, data=[{"id": 5}]), "id", id="track-id-int"),
    pytest.param(
        with_data(SEED_REPLACE_SUCCESS, data=[{"id": "a", "audio_url": 1}]),
        "audio_url",
        id="url-int",
    ),
    pytest.param(
        with_data(SEED_REPLACE_SUCCESS, data=[{"id": "a"}] * 51), "at most", id="too-many-tracks"
    ),
]


@pytest.mark.parametrize(("body", "needle"), MUSIC_BAD)
def test_malformed_music_callbacks_are_rejected(provider, body, needle):
    with pytest.raises(CallbackRejected, match=needle) as info:
        provider.parse_callback("replace_section", body)
    assert info.value.status_code == 400
    assert "replace_section callback refused" in info.value.message


MP4_BAD = [
    pytest.param(["x"], "JSON object", id="body-list"),
    pytest.param({"code": 200, "msg": "ok", "data": None}, "data", id="data-null"),
    pytest.param(with_data(SEED_MP4_SUCCESS, task_id=None), "task_id", id="task-id-null"),
    pytest.param(with_data(SEED_MP4_SUCCESS, video_url=7), "video_url", id="video-url-int"),
    pytest.param(with_data(SEED_MP4_SUCCESS, video_url=["u"]), "video_url", id="video-url-list"),
]


@pytest.mark.parametrize(("body", "needle"), MP4_BAD)
def test_malformed_mp4_callbacks_are_rejected(provider, body, needle):
    with pytest.raises(CallbackRejected, match=needle):
        provider.parse_callback("music_video", body)


# --- property: any JSON value ----------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
#: near-valid bodies, so the property also reaches the track and stage checks
TRACK_KEYS = st.sampled_from(
    ["id", "audio_url", "source_audio_url", "stream_audio_url", "image_url", "title",
     "tags", "duration", "model_name", "createTime"]
)  # fmt: skip
NEAR_TRACK = st.dictionaries(TRACK_KEYS, JSON | st.text(max_size=20), max_size=10)
NEAR_BODY = st.fixed_dictionaries(
    {
        "code": st.sampled_from([200, 400, 451, 500, 531]) | JSON,
        "msg": st.text(max_size=20) | JSON,
        "data": st.fixed_dictionaries(
            {
                "callbackType": st.sampled_from(["text", "first", "complete", "error"]) | JSON,
                "task_id": st.text(max_size=40) | JSON,
                "video_url": st.text(max_size=20) | JSON,
                "data": st.none() | st.lists(NEAR_TRACK | JSON, max_size=4) | JSON,
            }
        )
        | JSON,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON | NEAR_BODY, kind=st.sampled_from(KINDS), profile=st.sampled_from(PROFILES))
def test_any_json_gives_a_report_or_callback_rejected(body, kind, profile):
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        provider = SunoProvider(client, get_profile(profile), base_url="https://x", api_key="k")
        try:
            report = provider.parse_callback(kind, body)
        except CallbackRejected as exc:
            assert exc.message
            return
    assert isinstance(report, UpstreamReport)
    assert isinstance(report.task_id, str) and report.task_id
    for track in report.tracks:
        assert isinstance(track.id, str) and track.id
        for url in (track.audio_url, track.stream_url, track.image_url):
            assert url is None or (isinstance(url, str) and url)
    report.result_json()  # serialisable shape, no surprises
