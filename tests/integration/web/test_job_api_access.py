"""Who may use the job API, which shares the internet-facing callback listener."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.web.conftest import callback

SONG = {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": "x"}
TOKEN = "t" * 32


def _get(rig: Any, remote: str = "127.0.0.1", **headers: str) -> int:
    response = rig.client.get("/api/jobs", headers=headers, environ_base={"REMOTE_ADDR": remote})
    return int(response.status_code)


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_callers_may_use_it_by_default(make_rig: Any, remote: str) -> None:
    assert _get(make_rig(), remote) == 200


@pytest.mark.parametrize("remote", ["203.0.113.9", "10.0.0.5", "::ffff:10.0.0.5", "garbage"])
def test_anyone_else_is_refused_by_default(make_rig: Any, remote: str) -> None:
    rig = make_rig()
    assert _get(rig, remote) == 403
    refused = rig.client.post(
        "/api/jobs",
        json={"kind": "generate_music", "params": SONG, "key": "x"},
        environ_base={"REMOTE_ADDR": remote},
    )
    assert refused.status_code == 403
    assert rig.store.list_jobs() == []  # nothing written


@pytest.mark.parametrize(
    "header", ["Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP"]
)
def test_a_forwarded_request_is_never_local(make_rig: Any, header: str) -> None:
    """A reverse proxy on this host makes every internet caller look like loopback."""
    assert _get(make_rig(), "127.0.0.1", **{header: "203.0.113.9"}) == 403


def test_with_a_token_everyone_needs_it_and_loopback_gets_no_exemption(make_rig: Any) -> None:
    rig = make_rig()
    rig.ctx.api_token = TOKEN
    assert _get(rig, "127.0.0.1") == 401
    assert _get(rig, "203.0.113.9", Authorization="Bearer wrong") == 401
    assert _get(rig, "203.0.113.9", Authorization=f"Basic {TOKEN}") == 401
    assert _get(rig, "203.0.113.9", Authorization=f"Bearer {TOKEN}") == 200


def test_callbacks_and_health_are_not_behind_the_job_api_guard(make_rig: Any) -> None:
    rig = make_rig()
    health = rig.client.get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert health.status_code == 200
    _job, token = rig.new_job("cb")
    accepted = rig.post(token, callback("text"), remote="203.0.113.9")
    assert accepted.status_code == 200  # the upstream calls back from the internet
