"""SunoProvider.fetch: every record-info status of both families, track normalisation, and the
poll's error classification (transport -> Transient, unknown task -> 404, auth -> Rejected)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestrator.exceptions import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
    UpstreamUnavailable,
)
from orchestrator.observations import Track, UpstreamReport, UpstreamStatus

PROFILES = ["sunoapi", "kie"]
TASK = "8a1b2c3d4e5f60718293a4b5c6d7e8f9"

TRACK_1 = {
    "id": "e231aaaa-1111-2222-3333-44448cadc7dc",
    "audioUrl": "https://cdn.example/e231.mp3",
    "streamAudioUrl": "https://cdn.example/stream/e231",
    "imageUrl": "https://cdn.example/e231.jpeg",
    "prompt": "[Verse] calm",
    "modelName": "chirp-v4-5",
    "title": "Relaxing Piano",
    "tags": "jazz, piano",
    "createTime": "2025-01-01 00:00:00",
    "duration": 198.44,
}
TRACK_2 = {
    "id": "f9b0bbbb-5555-6666-7777-8888aa001122",
    "audioUrl": "https://cdn.example/f9b0.mp3",
    "streamAudioUrl": "https://cdn.example/stream/f9b0",
    "imageUrl": "https://cdn.example/f9b0.jpeg",
    "modelName": "chirp-v4-5",
    "title": "Relaxing Piano",
    "tags": "jazz, piano",
    "createTime": 1735689600000,
    "duration": 201,
}
TRACK_2_STREAMING = {**TRACK_2, "audioUrl": "", "imageUrl": "", "duration": None}


def music(status: str, tracks: list[Any] | None, **extra: Any) -> dict[str, Any]:
    response = None if tracks is None else {"taskId": TASK, "sunoData": tracks}
    data = {
        "taskId": TASK,
        "parentMusicId": "",
        "param": '{"prompt":"calm"}',
        "response": response,
        "status": status,
        "type": "chirp-v4-5",
        "operationType": "generate",
        "errorCode": None,
        "errorMessage": None,
        **extra,
    }
    return {"code": 200, "msg": "success", "data": data}


def mp4(flag: str, video_url: Any = None, response: Any = "build", **extra: Any) -> dict[str, Any]:
    if response == "build":
        response = {"videoUrl": video_url}
    data = {
        "taskId": TASK,
        "musicId": "e231aaaa-1111-2222-3333-44448cadc7dc",
        "callbackUrl": "https://orchestrator.example/cb",
        "audioId": "e231aaaa-1111-2222-3333-44448cadc7dc",
        "completeTime": None,
        "response": response,
        "successFlag": flag,
        "createTime": "2025-01-01 00:00:00",
        "errorCode": None,
        "errorMessage": None,
        **extra,
    }
    return {"code": 200, "msg": "success", "data": data}


def fetch(make: Any, body: Any, kind: str = "generate_music", profile: str = "sunoapi") -> Any:
    provider = make(profile, lambda r: httpx.Response(200, json=body))
    return provider.fetch(kind, TASK)


def raises_exactly(cls: type[Exception], fn: Any, *args: Any) -> Any:
    with pytest.raises(cls) as info:
        fn(*args)
    assert type(info.value) is cls, f"{type(info.value).__name__} is not {cls.__name__}"
    return info.value


# --- request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [
        ("generate_music", "/api/v1/generate/record-info", music("PENDING", None)),
        ("replace_section", "/api/v1/generate/record-info", music("PENDING", None)),
        ("music_video", "/api/v1/mp4/record-info", mp4("PENDING")),
    ],
)
def test_fetch_gets_detail_path_with_task_id(make, api_key, profile, kind, path, body):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    report = make(profile, handler).fetch(kind, TASK)
    assert report.status is UpstreamStatus.PENDING
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == path
    assert request.url.params["taskId"] == TASK
    assert request.headers["Authorization"] == f"Bearer {api_key}"


# --- music family ----------------------------------------------------------------------------

FULL_1 = Track(
    id="e231aaaa-1111-2222-3333-44448cadc7dc",
    audio_url="https://cdn.example/e231.mp3",
    stream_url="https://cdn.example/stream/e231",
    image_url="https://cdn.example/e231.jpeg",
    title="Relaxing Piano",
    tags="jazz, piano",
    duration=198.44,
    model="chirp-v4-5",
    created_at="2025-01-01T00:00:00Z",
)

MUSIC_STATUSES = [
    pytest.param("PENDING", None, UpstreamStatus.PENDING, 0, id="pending-null-response"),
    pytest.param("PENDING", [], UpstreamStatus.PENDING, 0, id="pending-empty-list"),
    pytest.param("TEXT_SUCCESS", [], UpstreamStatus.TEXT_SUCCESS, 0, id="text"),
    pytest.param(
        "FIRST_SUCCESS", [TRACK_1, TRACK_2_STREAMING], UpstreamStatus.FIRST_SUCCESS, 2, id="first"
    ),
    pytest.param("SUCCESS", [TRACK_1, TRACK_2], UpstreamStatus.SUCCESS, 2, id="success"),
    pytest.param(
        "CALLBACK_EXCEPTION", [TRACK_1, TRACK_2], UpstreamStatus.SUCCESS, 2, id="cbexc-all-audio"
    ),
    pytest.param(
        "CALLBACK_EXCEPTION",
        [TRACK_1, TRACK_2_STREAMING],
        UpstreamStatus.FIRST_SUCCESS,
        2,
        id="cbexc-some-audio",
    ),
    pytest.param(
        "CALLBACK_EXCEPTION",
        [{**TRACK_1, "audioUrl": ""}, TRACK_2_STREAMING],
        UpstreamStatus.PENDING,
        2,
        id="cbexc-no-audio",
    ),
    pytest.param("CALLBACK_EXCEPTION", [], UpstreamStatus.PENDING, 0, id="cbexc-empty"),
    pytest.param("CALLBACK_EXCEPTION", None, UpstreamStatus.PENDING, 0, id="cbexc-null"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("word", "tracks", "expected", "count"), MUSIC_STATUSES)
def test_music_statuses(make, profile, word, tracks, expected, count):
    report = fetch(make, music(word, tracks), profile=profile)
    assert isinstance(report, UpstreamReport)
    assert report.status is expected
    assert report.raw_status == word
    assert report.task_id == TASK
    assert len(report.tracks) == count
    assert report.error_code is None and report.error_message is None


@pytest.mark.parametrize(
    "word",
    [
        "CREATE_TASK_FAILED",
        "GENERATE_AUDIO_FAILED",
        "SENSITIVE_WORD_ERROR",
        "GENERATE_LYRICS_FAILED",  # any *_FAILED
        "CONTENT_POLICY_ERROR",  # any *_ERROR
    ],
)
def test_music_failures_carry_code_and_message(make, word):
    body = music(word, None, errorCode=413, errorMessage="Lyrics contain sensitive words")
    report = fetch(make, body)
    assert report.status is UpstreamStatus.FAILED
    assert report.raw_status == word
    assert report.error_code == 413
    assert report.error_message == "Lyrics contain sensitive words"


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [(None, None), ("531", 531), (" 400 ", 400), ("abc", None), (True, None), (10**30, None)],
)
def test_failure_error_code_forms(make, error_code, expected):
    report = fetch(make, music("GENERATE_AUDIO_FAILED", [], errorCode=error_code))
    assert report.error_code == expected
    assert report.error_message == "GENERATE_AUDIO_FAILED"  # no errorMessage: the status word


def test_success_tracks_are_normalised(make):
    report = fetch(make, music("SUCCESS", [TRACK_1, TRACK_2]))
    assert report.tracks[0] == FULL_1
    second = report.tracks[1]
    assert second.duration == 201.0
    assert second.created_at == "2025-01-01T00:00:00Z"  # epoch milliseconds


def test_partial_first_track_empty_urls_become_none(make):
    report = fetch(make, music("FIRST_SUCCESS", [TRACK_1, TRACK_2_STREAMING]))
    first, second = report.tracks
    assert first.audio_url == "https://cdn.example/e231.mp3"
    assert second.audio_url is None
    assert second.image_url is None
    assert second.stream_url == "https://cdn.example/stream/f9b0"
    assert second.duration is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01 00:00:00", "2025-01-01T00:00:00Z"),
        (1735689600000, "2025-01-01T00:00:00Z"),
        ("1735689600000", "2025-01-01T00:00:00Z"),
        ("2025-01-01T02:00:00+02:00", "2025-01-01T00:00:00Z"),
        ("2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00Z"),
        ("last tuesday", None),
        ({"t": 1}, None),
    ],
)
def test_track_created_at_formats(make, value, expected):
    report = fetch(make, music("SUCCESS", [{**TRACK_1, "createTime": value}]))
    assert report.tracks[0].created_at == expected


def test_task_id_falls_back_to_the_requested_one(make):
    body = music("PENDING", None)
    del body["data"]["taskId"]
    assert fetch(make, body).task_id == TASK


def test_success_status_is_kept_even_without_audio(make):
    # SUCCESS is taken as is; the kinds module decides whether the URLs suffice
    report = fetch(make, music("SUCCESS", [TRACK_2_STREAMING]))
    assert report.status is UpstreamStatus.SUCCESS


def test_metadata_of_wrong_type_is_dropped_not_fatal(make):
    odd = {**TRACK_1, "title": 12, "tags": None, "duration": "abc", "modelName": ["x"]}
    (track,) = fetch(make, music("SUCCESS", [odd])).tracks
    assert (track.title, track.tags, track.duration, track.model) == (None, None, None, None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(music("EXPLODED", []), id="unknown-status"),
        pytest.param(music("", []), id="empty-status"),
        pytest.param(music(None, []), id="status-null"),  # type: ignore[arg-type]
        pytest.param({"code": 200, "msg": "ok", "data": []}, id="data-list"),
        pytest.param({"code": 200, "msg": "ok", "data": "x"}, id="data-string"),
        pytest.param(music("SUCCESS", None, response="x"), id="response-string"),
        pytest.param(music("SUCCESS", None, response={"sunoData": {}}), id="sunodata-object"),
        pytest.param(music("SUCCESS", [None]), id="track-null"),
        pytest.param(music("SUCCESS", [{"audioUrl": "https://a"}]), id="track-no-id"),
        pytest.param(music("SUCCESS", [{**TRACK_1, "audioUrl": 5}]), id="url-int"),
    ],
)
def test_music_garbage_is_a_protocol_error(make, body):
    exc = raises_exactly(UpstreamProtocolError, fetch, make, body)
    assert "sunoapi fetch generate_music" in exc.message


# --- mp4 family ------------------------------------------------------------------------------

VIDEO = "https://cdn.example/video_847715e66259.mp4"

MP4_STATUSES = [
    pytest.param(mp4("PENDING"), UpstreamStatus.PENDING, None, id="pending"),
    pytest.param(mp4("PENDING", response=None), UpstreamStatus.PENDING, None, id="pending-null"),
    pytest.param(mp4("SUCCESS", VIDEO), UpstreamStatus.SUCCESS, VIDEO, id="success"),
    pytest.param(mp4("SUCCESS", None), UpstreamStatus.PENDING, None, id="success-without-url"),
    pytest.param(mp4("SUCCESS", ""), UpstreamStatus.PENDING, None, id="success-empty-url"),
    pytest.param(mp4("CALLBACK_EXCEPTION", VIDEO), UpstreamStatus.SUCCESS, VIDEO, id="cbexc-url"),
    pytest.param(mp4("CALLBACK_EXCEPTION"), UpstreamStatus.PENDING, None, id="cbexc-no-url"),
    pytest.param(
        mp4("CALLBACK_EXCEPTION", response=None), UpstreamStatus.PENDING, None, id="cbexc-null"
    ),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("body", "expected", "video"), MP4_STATUSES)
def test_mp4_statuses(make, profile, body, expected, video):
    report = fetch(make, body, kind="music_video", profile=profile)
    assert report.status is expected
    assert report.video_url == video
    assert report.raw_status == body["data"]["successFlag"]
    assert report.tracks == ()


@pytest.mark.parametrize("flag", ["CREATE_TASK_FAILED", "GENERATE_MP4_FAILED"])
def test_mp4_failures(make, flag):
    body = mp4(flag, errorCode=451, errorMessage="could not download the source audio")
    report = fetch(make, body, kind="music_video")
    assert report.status is UpstreamStatus.FAILED
    assert report.error_code == 451
    assert report.error_message == "could not download the source audio"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(mp4("DONE", VIDEO), id="unknown-flag"),
        pytest.param(mp4(1, VIDEO), id="flag-int"),  # type: ignore[arg-type]
        pytest.param(mp4("SUCCESS", response=[VIDEO]), id="response-list"),
        pytest.param(mp4("SUCCESS", 42), id="video-url-int"),
    ],
)
def test_mp4_garbage_is_a_protocol_error(make, body):
    raises_exactly(UpstreamProtocolError, fetch, make, body, "music_video")


# --- errors ----------------------------------------------------------------------------------

TRANSPORT = [
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ProxyError,
    httpx.DecodingError,
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("error", TRANSPORT, ids=lambda e: e.__name__)
def test_every_transport_error_is_transient_for_a_poll(make, api_key, profile, error):
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed near {api_key}", request=request)

    exc = raises_exactly(UpstreamUnavailable, make(profile, handler).fetch, "generate_music", TASK)
    assert isinstance(exc.__cause__, error)
    assert api_key not in str(exc)


UNKNOWN_TASK = [
    pytest.param(404, b"", id="http404-empty"),
    pytest.param(404, b'{"code": 404, "msg": "not found", "data": null}', id="http404-envelope"),
    pytest.param(404, b"<html>Not Found</html>", id="http404-html"),
    pytest.param(200, b'{"code": 404, "msg": "record not found", "data": null}', id="code404"),
    pytest.param(200, b'{"code": 400, "msg": "Task does not exist", "data": null}', id="msg"),
    pytest.param(200, b'{"code": 200, "msg": "success", "data": null}', id="data-null"),
    pytest.param(200, b'{"code": 200, "msg": "success"}', id="data-missing"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("status", "body"), UNKNOWN_TASK)
def test_unknown_task_is_transient_404(make, profile, status, body):
    provider = make(profile, lambda r: httpx.Response(status, content=body))
    exc = raises_exactly(UpstreamTransient, provider.fetch, "generate_music", TASK)
    assert exc.code == 404


AUTH = [
    pytest.param(200, b'{"code": 401, "msg": "Unauthorized", "data": null}', id="code401"),
    pytest.param(401, b'{"code": 401, "msg": "Unauthorized", "data": null}', id="http401-env"),
    pytest.param(401, b"Unauthorized", id="http401-bare"),
    pytest.param(403, b"<html>Forbidden by CDN</html>", id="http403-bare"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("status", "body"), AUTH)
def test_auth_failure_is_rejected(make, profile, status, body):
    provider = make(profile, lambda r: httpx.Response(status, content=body))
    raises_exactly(UpstreamRejected, provider.fetch, "music_video", TASK)


POLL_CODES = [
    pytest.param("sunoapi", 430, UpstreamRateLimited, id="sunoapi-430"),
    pytest.param("sunoapi", 405, UpstreamRateLimited, id="sunoapi-405"),
    pytest.param("sunoapi", 429, UpstreamTransient, id="sunoapi-429-credits"),
    pytest.param("kie", 429, UpstreamRateLimited, id="kie-429"),
    pytest.param("kie", 402, UpstreamTransient, id="kie-402"),
    pytest.param("sunoapi", 455, UpstreamUnavailable, id="sunoapi-455"),
    pytest.param("kie", 455, UpstreamUnavailable, id="kie-455"),
    pytest.param("sunoapi", 500, UpstreamUnavailable, id="sunoapi-500"),
    pytest.param("kie", 400, UpstreamTransient, id="kie-400"),
    pytest.param("kie", 501, UpstreamTransient, id="kie-501"),
]


@pytest.mark.parametrize(("profile", "code", "expected"), POLL_CODES)
def test_poll_error_codes_other_than_auth_are_retried(make, profile, code, expected):
    body = {"code": code, "msg": "busy", "data": None}
    provider = make(profile, lambda r: httpx.Response(200, json=body))
    exc = raises_exactly(expected, provider.fetch, "generate_music", TASK)
    assert exc.code == code


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(200, b"<html>hi</html>", UpstreamProtocolError, id="200-html"),
        pytest.param(200, b"[]", UpstreamProtocolError, id="200-list"),
        pytest.param(200, b'{"msg": "success"}', UpstreamProtocolError, id="200-no-code"),
        pytest.param(500, b"oops", UpstreamUnavailable, id="500-bare"),
        pytest.param(502, b"", UpstreamUnavailable, id="502-bare"),
        pytest.param(429, b"", UpstreamRateLimited, id="429-bare"),
        pytest.param(
            500, b'{"code": 500, "msg": "err", "data": null}', UpstreamUnavailable, id="500"
        ),
    ],
)
def test_poll_garbage_and_http_errors(make, status, body, expected):
    provider = make("kie", lambda r: httpx.Response(status, content=body))
    exc = raises_exactly(expected, provider.fetch, "generate_music", TASK)
    assert exc.http_status == status
    assert isinstance(exc, UpstreamError)
