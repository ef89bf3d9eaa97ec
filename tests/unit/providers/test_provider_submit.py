"""SunoProvider.submit: request shape, every envelope code per profile, HTTP errors, transport
errors (Transient vs Ambiguous), Retry-After, and the API key kept out of every message."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from orchestrator.exceptions import (
    InvalidParams,
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamOutOfCredits,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from orchestrator.providers import Profile, SunoProvider, get_profile, make_provider
from orchestrator.providers.profiles import BROWSER_USER_AGENT, Outcome

PROFILES = ["sunoapi", "kie"]
PARAMS = {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": "calm piano"}
CALLBACK = "https://orchestrator.example/callbacks/tok_abc123"

# Written out by hand from UPSTREAM_API.md, not derived from the profile under test.
EXPECTED: dict[str, dict[int, type[UpstreamError]]] = {
    "sunoapi": {
        400: UpstreamRejected,
        401: UpstreamRejected,
        402: UpstreamOutOfCredits,
        405: UpstreamRateLimited,
        409: UpstreamRejected,
        413: UpstreamRejected,
        422: UpstreamRejected,
        429: UpstreamOutOfCredits,  # insufficient credits
        430: UpstreamRateLimited,
        455: UpstreamUnavailable,
        500: UpstreamUnavailable,
        501: UpstreamRejected,
        505: UpstreamRejected,
        # not in the table: fallback rules
        503: UpstreamUnavailable,
        408: UpstreamUnavailable,
        418: UpstreamRejected,
    },
    "kie": {
        400: UpstreamRejected,
        401: UpstreamRejected,
        402: UpstreamOutOfCredits,
        405: UpstreamRejected,  # not a rate limit on kie.ai
        409: UpstreamRejected,
        413: UpstreamRejected,
        422: UpstreamRejected,
        429: UpstreamRateLimited,  # rate limited
        430: UpstreamRejected,
        455: UpstreamUnavailable,
        500: UpstreamUnavailable,
        501: UpstreamRejected,
        505: UpstreamRejected,
        503: UpstreamUnavailable,
        408: UpstreamUnavailable,
        418: UpstreamRejected,
    },
}
CODE_CASES = [
    pytest.param(profile, code, cls, id=f"{profile}-{code}")
    for profile, table in EXPECTED.items()
    for code, cls in table.items()
]


def reply(status: int = 200, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.Response(status, json=body, **kwargs)


def accepted(task_id: str = "5c79a1b2c3d4e5f60718293a4b5c6d7e") -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": {"taskId": task_id}}


def raises_exactly(cls: type[Exception], fn: Any, *args: Any) -> Any:
    with pytest.raises(cls) as info:
        fn(*args)
    assert type(info.value) is cls, f"{type(info.value).__name__} is not {cls.__name__}"
    return info.value


# --- success and request shape ---------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_submit_posts_params_with_callback_and_bearer(make, api_key, profile):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(200, accepted())

    provider = make(profile, handler)
    assert provider.submit("generate_music", PARAMS, CALLBACK) == (
        "5c79a1b2c3d4e5f60718293a4b5c6d7e"
    )
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://upstream.test/api/v1/generate"
    assert request.headers["Authorization"] == f"Bearer {api_key}"
    assert json.loads(request.content) == {**PARAMS, "callBackUrl": CALLBACK}
    if profile == "kie":
        assert request.headers["User-Agent"] == BROWSER_USER_AGENT
    else:  # the client's own User-Agent is kept
        assert request.headers["User-Agent"].startswith("python-httpx/")


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("generate_music", "/api/v1/generate"),
        ("replace_section", "/api/v1/generate/replace-section"),
        ("music_video", "/api/v1/mp4/generate"),
    ],
)
def test_submit_uses_the_kinds_path(make, kind, path):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(200, accepted("abc"))

    assert make("kie", handler).submit(kind, {"taskId": "t", "audioId": "a"}, CALLBACK) == "abc"
    assert seen[0].url.path == path


def test_submit_does_not_mutate_params(make):
    params = dict(PARAMS)
    make("sunoapi", lambda r: reply(200, accepted())).submit("generate_music", params, CALLBACK)
    assert params == PARAMS


def test_unknown_kind_is_a_usage_error(make):
    with pytest.raises(InvalidParams):
        make("sunoapi", lambda r: reply(200, accepted())).submit("karaoke", PARAMS, CALLBACK)


# --- envelope codes --------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "code", "expected"), CODE_CASES)
@pytest.mark.parametrize("http_status", [200, "same"], ids=["http200", "http-same"])
def test_every_code_maps_to_its_exception(make, profile, code, expected, http_status):
    status = code if http_status == "same" else 200
    body = {"code": code, "msg": f"upstream says {code}", "data": None}
    provider = make(profile, lambda r: reply(status, body))
    exc = raises_exactly(expected, provider.submit, "generate_music", PARAMS, CALLBACK)
    assert exc.code == code
    assert exc.http_status == status
    assert f"upstream says {code}" in exc.message
    assert profile in exc.message


def test_429_differs_per_profile(make):
    body = {"code": 429, "msg": "no", "data": None}
    with pytest.raises(UpstreamRejected, match="insufficient credits"):
        make("sunoapi", lambda r: reply(200, body)).submit("generate_music", PARAMS, CALLBACK)
    with pytest.raises(UpstreamRateLimited, match="rate limited"):
        make("kie", lambda r: reply(200, body)).submit("generate_music", PARAMS, CALLBACK)


def test_error_envelope_inside_http_200_is_an_error(make):
    body = {"code": 422, "msg": "Please enter callBackUrl", "data": {"taskId": "looks-fine"}}
    exc = raises_exactly(
        UpstreamRejected,
        make("kie", lambda r: reply(200, body)).submit,
        "generate_music",
        PARAMS,
        CALLBACK,
    )
    assert exc.code == 422
    assert "Please enter callBackUrl" in exc.message


def test_rejected_message_truncates_long_upstream_msg(make):
    body = {"code": 400, "msg": "x" * 5000 + "\n\x00tail", "data": None}
    exc = raises_exactly(
        UpstreamRejected,
        make("sunoapi", lambda r: reply(400, body)).submit,
        "generate_music",
        PARAMS,
        CALLBACK,
    )
    assert len(exc.message) < 400
    assert "\x00" not in exc.message


def test_http_error_status_with_envelope_uses_envelope_code(make):
    body = {"code": 400, "msg": "bad style", "data": None}
    exc = raises_exactly(
        UpstreamRejected,
        make("sunoapi", lambda r: reply(500, body)).submit,
        "generate_music",
        PARAMS,
        CALLBACK,
    )
    assert (exc.code, exc.http_status) == (400, 500)


def test_success_code_with_task_id_inside_http_error_is_accepted(make):
    assert make("kie", lambda r: reply(500, accepted("t1"))).submit(
        "generate_music", PARAMS, CALLBACK
    ) == ("t1")


# --- HTTP errors without an envelope ---------------------------------------------------------

BARE_HTTP = [
    pytest.param(500, UpstreamUnavailable, id="500"),
    pytest.param(503, UpstreamUnavailable, id="503"),
    pytest.param(408, UpstreamUnavailable, id="408"),
    pytest.param(429, UpstreamRateLimited, id="429"),
    pytest.param(401, UpstreamRejected, id="401"),
    pytest.param(403, UpstreamRejected, id="403"),
    pytest.param(404, UpstreamRejected, id="404"),
    pytest.param(502, UpstreamAmbiguous, id="502-gateway"),
    pytest.param(504, UpstreamAmbiguous, id="504-gateway"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("status", "expected"), BARE_HTTP)
@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"", b'{"detail": "nope"}', b"[1, 2]"],
    ids=["html", "empty", "json-no-code", "json-list"],
)
def test_http_error_without_envelope_maps_by_status(make, profile, status, expected, body):
    provider = make(profile, lambda r: httpx.Response(status, content=body))
    exc = raises_exactly(expected, provider.submit, "generate_music", PARAMS, CALLBACK)
    assert exc.http_status == status
    assert exc.code is None


def test_envelope_success_code_without_task_id_in_http_error_goes_by_status(make):
    exc = raises_exactly(
        UpstreamUnavailable,
        make("sunoapi", lambda r: reply(500, {"code": 200, "msg": "ok", "data": None})).submit,
        "generate_music",
        PARAMS,
        CALLBACK,
    )
    assert exc.http_status == 500


# --- garbage with HTTP 200: the task may exist -----------------------------------------------

GARBAGE_200 = [
    pytest.param(b"not json at all", id="not-json"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    pytest.param(b"[]", id="list"),
    pytest.param(b'"success"', id="string"),
    pytest.param(b"null", id="null"),
    pytest.param(b'{"msg": "success", "data": {"taskId": "t"}}', id="missing-code"),
    pytest.param(b'{"code": "200", "data": {"taskId": "t"}}', id="code-is-string"),
    pytest.param(b'{"code": true, "data": {"taskId": "t"}}', id="code-is-bool"),
    pytest.param(b'{"code": 1' + b"0" * 400 + b"}", id="code-huge"),
    pytest.param(b'{"code": 200, "msg": "success"}', id="missing-data"),
    pytest.param(b'{"code": 200, "msg": "success", "data": null}', id="data-null"),
    pytest.param(b'{"code": 200, "msg": "success", "data": []}', id="data-list"),
    pytest.param(b'{"code": 200, "data": {"taskId": ""}}', id="task-id-empty"),
    pytest.param(b'{"code": 200, "data": {"taskId": 1234}}', id="task-id-int"),
    pytest.param(b'{"code": 200, "data": {"task_id": "t"}}', id="task-id-wrong-name"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deeply-nested"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("body", GARBAGE_200)
def test_garbage_answer_to_submit_is_ambiguous(make, profile, body):
    provider = make(profile, lambda r: httpx.Response(200, content=body))
    exc = raises_exactly(UpstreamAmbiguous, provider.submit, "generate_music", PARAMS, CALLBACK)
    assert exc.http_status == 200


def test_task_id_is_stripped(make):
    got = make("kie", lambda r: reply(200, accepted("  abc  "))).submit(
        "generate_music", PARAMS, CALLBACK
    )
    assert got == "abc"


# --- transport errors ------------------------------------------------------------------------

TRANSPORT = [
    pytest.param(httpx.ConnectError, UpstreamUnavailable, id="ConnectError"),
    pytest.param(httpx.ConnectTimeout, UpstreamUnavailable, id="ConnectTimeout"),
    pytest.param(httpx.PoolTimeout, UpstreamUnavailable, id="PoolTimeout"),
    pytest.param(httpx.ProxyError, UpstreamUnavailable, id="ProxyError"),
    pytest.param(httpx.LocalProtocolError, UpstreamUnavailable, id="LocalProtocolError"),
    pytest.param(httpx.ReadTimeout, UpstreamAmbiguous, id="ReadTimeout"),
    pytest.param(httpx.WriteTimeout, UpstreamAmbiguous, id="WriteTimeout"),
    pytest.param(httpx.RemoteProtocolError, UpstreamAmbiguous, id="RemoteProtocolError"),
    pytest.param(httpx.ReadError, UpstreamAmbiguous, id="ReadError"),
    pytest.param(httpx.WriteError, UpstreamAmbiguous, id="WriteError"),
    pytest.param(httpx.CloseError, UpstreamAmbiguous, id="CloseError"),
    pytest.param(httpx.DecodingError, UpstreamAmbiguous, id="DecodingError"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("error", "expected"), TRANSPORT)
def test_transport_errors_split_transient_and_ambiguous(make, api_key, profile, error, expected):
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"boom with {api_key} inside", request=request)

    exc = raises_exactly(
        expected, make(profile, handler).submit, "generate_music", PARAMS, CALLBACK
    )
    assert isinstance(exc.__cause__, error)
    assert error.__name__ in exc.message
    assert api_key not in str(exc)


# --- Retry-After -----------------------------------------------------------------------------


def rate_limited(profile: str, headers: dict[str, str]) -> httpx.Response:
    code = 430 if profile == "sunoapi" else 429
    return reply(200, {"code": code, "msg": "slow down", "data": None}, headers=headers)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param({"Retry-After": "17"}, 17.0, id="seconds"),
        pytest.param({"Retry-After": "2.5"}, 2.5, id="fractional-seconds"),
        pytest.param({"Retry-After": "Thu, 01 Jan 2026 00:01:30 GMT"}, 90.0, id="http-date"),
        pytest.param({"Retry-After": "Wed, 31 Dec 2025 23:00:00 GMT"}, 0.0, id="date-in-past"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": "-5"}, None, id="negative"),
        pytest.param({}, None, id="absent"),
    ],
)
@freeze_time("2026-01-01 00:00:00")
def test_retry_after_seconds_or_date(make, profile, header, expected):
    provider = make(profile, lambda r: rate_limited(profile, header))
    exc = raises_exactly(UpstreamRateLimited, provider.submit, "generate_music", PARAMS, CALLBACK)
    assert exc.retry_after == expected


@freeze_time("2026-01-01 00:00:00")
def test_bare_http_429_carries_retry_after(make):
    provider = make("sunoapi", lambda r: httpx.Response(429, headers={"Retry-After": "60"}))
    exc = raises_exactly(UpstreamRateLimited, provider.submit, "generate_music", PARAMS, CALLBACK)
    assert exc.retry_after == 60.0


# --- the API key stays secret ----------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("code", [400, 401, 429, 455, 500])
def test_api_key_never_in_exception_even_when_echoed(make, api_key, profile, code):
    body = {"code": code, "msg": f"Invalid token Bearer {api_key} for user", "data": None}
    provider = make(profile, lambda r: reply(code, body))
    with pytest.raises(UpstreamError) as info:
        provider.submit("generate_music", PARAMS, CALLBACK)
    exc = info.value
    for text in (str(exc), repr(exc), exc.message, repr(exc.args)):
        assert api_key not in text
    assert "Invalid token" in exc.message


def test_api_key_not_in_provider_repr(make, api_key):
    provider = make("kie", lambda r: reply(200, accepted()))
    assert api_key not in repr(provider)
    assert api_key not in str(provider)
    assert "kie" in repr(provider)


# --- profiles and the factory ----------------------------------------------------------------


def test_get_profile_and_unknown_name():
    assert get_profile("sunoapi").default_base_url == "https://api.sunoapi.org"
    assert get_profile("kie").default_base_url == "https://api.kie.ai"
    assert get_profile("kie").browser_user_agent is True
    assert get_profile("sunoapi").browser_user_agent is False
    with pytest.raises(ValueError, match="unknown provider profile"):
        get_profile("udio")


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_tables_have_a_reason_per_code(profile):
    spec: Profile = get_profile(profile)
    assert hash(spec) == hash(get_profile(profile))
    for code in spec.codes:
        assert spec.reason(code)
        assert spec.reasons[code]
    assert spec.outcome(200) is Outcome.SUCCESS
    assert spec.reason(599) == "temporary upstream error"


def test_non_browser_profile_keeps_the_clients_user_agent(api_key):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(200, accepted())

    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, headers={"User-Agent": "orch/1"}) as client:
        make_provider("sunoapi", client, base_url="", api_key=api_key).submit(
            "generate_music", PARAMS, CALLBACK
        )
        make_provider("kie", client, base_url="", api_key=api_key).submit(
            "generate_music", PARAMS, CALLBACK
        )
    assert [r.headers["User-Agent"] for r in seen] == ["orch/1", BROWSER_USER_AGENT]


def test_make_provider_takes_the_clients_read_timeout(api_key):
    with httpx.Client(timeout=httpx.Timeout(12.0, connect=3.0)) as client:
        provider = make_provider("kie", client, base_url="", api_key=api_key)
        assert isinstance(provider, SunoProvider)
        assert provider.timeout_s == 12.0
    with httpx.Client(timeout=None) as client:
        provider = make_provider("kie", client, base_url="", api_key=api_key)
        assert isinstance(provider, SunoProvider)
        assert provider.timeout_s == 30.0


def test_make_provider_builds_a_suno_provider(api_key):
    with httpx.Client(transport=httpx.MockTransport(lambda r: reply(200, accepted("k")))) as c:
        provider = make_provider("kie", c, base_url="https://x.test/", api_key=api_key)
        assert isinstance(provider, SunoProvider)
        assert provider.profile == "kie"
        assert provider.submit("generate_music", PARAMS, CALLBACK) == "k"
        default = make_provider("sunoapi", c, base_url="", api_key=api_key)
        assert isinstance(default, SunoProvider)
        assert default.base_url == "https://api.sunoapi.org"
        with pytest.raises(ValueError):
            make_provider("nope", c, base_url="", api_key=api_key)
