"""GET /api/v1/generate/credit through the adapter: the balance, or a clear error."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.exceptions import UpstreamProtocolError, UpstreamRejected, UpstreamTransient


@pytest.mark.parametrize("profile", ["sunoapi", "kie"])
def test_the_balance_is_read_from_the_envelope(make, profile):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": 87})

    assert make(profile, handler).credits() == 87
    assert seen[0].url.path == "/api/v1/generate/credit"
    assert seen[0].headers["Authorization"].startswith("Bearer ")


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, json={"code": 200, "data": "lots"}), UpstreamProtocolError),
        (httpx.Response(200, json={"code": 200, "data": True}), UpstreamProtocolError),
        (httpx.Response(200, text="<html>"), UpstreamProtocolError),
        (httpx.Response(200, json={"code": 401, "msg": "bad key", "data": None}), UpstreamRejected),
        (httpx.Response(503), UpstreamTransient),
    ],
)
def test_a_bad_answer_is_a_clear_error(make, response, error):
    with pytest.raises(error):
        make("sunoapi", lambda request: response).credits()
