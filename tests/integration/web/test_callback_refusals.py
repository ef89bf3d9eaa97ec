"""One test per refusal of the callback endpoint, against a real SQLite store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.observations import Track, UpstreamReport, UpstreamStatus
from orchestrator.states import JobState
from orchestrator.web.callback_auth import CallbackAuth, KieSignature, SourcePolicy, sign
from tests.integration.web.conftest import TASK, callback, track

KEY = "kie-hmac-key-for-tests"


def test_a_valid_callback_is_accepted_and_wakes_the_poller(make_rig: Any) -> None:
    rig = make_rig()
    job, token = rig.new_job("ok")
    response = rig.post(token, callback("complete", tracks=[track("a")]))
    assert response.status_code == 200
    assert rig.woken == [job.id]
    assert rig.events(job.id)[-1].type == "callback_received"


@pytest.mark.parametrize(
    "token",
    [
        "A" * 43,  # well-formed, unknown
        "short",  # not even the right shape
        "x" * 200,
        "%2e%2e%2fetc",
    ],
)
def test_an_unknown_token_gets_404_and_writes_nothing(make_rig: Any, token: str) -> None:
    rig = make_rig()
    job, _ = rig.new_job("victim")
    before = len(rig.events(job.id))
    response = rig.post(token, callback())
    assert response.status_code == 404
    assert len(rig.events(job.id)) == before
    assert rig.job(job.id).callbacks == 0


def test_the_token_is_a_hash_lookup_the_store_never_holds_it(make_rig: Any) -> None:
    rig = make_rig()
    job, token = rig.new_job("hashed")
    dump = json.dumps([e.payload for e in rig.events(job.id)]) + repr(rig.job(job.id))
    assert token not in dump
    assert len(token) >= 43  # 32 random bytes: 256 bits


def test_an_oversized_body_gets_413(make_rig: Any) -> None:
    rig = make_rig(max_body_bytes=1024)
    job, token = rig.new_job("big")
    body = callback(tracks=[track("a", title="x" * 4000)])
    response = rig.post(token, body)
    assert response.status_code == 413
    assert rig.job(job.id).state == JobState.PENDING


def test_the_default_cap_is_one_mebibyte(make_rig: Any) -> None:
    rig = make_rig()
    _, token = rig.new_job("mib")
    response = rig.post(token, data=b" " * (1024 * 1024 + 1))
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_typed_gets_415(make_rig: Any, content_type: str) -> None:
    rig = make_rig()
    job, token = rig.new_job("typed")
    response = rig.post(token, callback(), content_type=content_type)
    assert response.status_code == 415
    assert rig.events(job.id)[-1].type == "callback_rejected"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"code": NaN}', "not valid JSON"),
        (b'{"code": Infinity}', "not valid JSON"),
        (b'{"s": "\\ud800"}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"complete"', "must be a JSON object"),
        (b'{"code": "200", "data": {}}', "code must be an integer"),
        (b'{"code": 200, "data": []}', "data must be an object"),
        (b'{"code": 200, "data": {"callbackType": "complete"}}', "task_id"),
        (b'{"code": 200, "data": {"callbackType": "done", "task_id": "t"}}', "callbackType"),
        (b'{"code": 200, "data": {"callbackType": "complete", "task_id": "t", "data": 5}}', "list"),
    ],
)
def test_a_malformed_body_gets_400_with_a_clear_message(
    make_rig: Any, raw: bytes, message: str
) -> None:
    rig = make_rig()
    job, token = rig.new_job("malformed")
    response = rig.post(token, data=raw)
    assert response.status_code == 400
    assert message in response.get_json()["msg"]
    assert rig.events(job.id)[-1].type == "callback_rejected"
    assert rig.job(job.id).state == JobState.PENDING


def test_a_refused_body_is_kept_only_as_a_short_excerpt(make_rig: Any) -> None:
    """Whoever holds a token cannot grow the event log by a mebibyte per request."""
    from orchestrator.web.app import REFUSED_EXCERPT

    rig = make_rig()
    job, token = rig.new_job("bulky")
    body = {"code": 200, "msg": "x" * 500_000, "data": "not an object"}
    response = rig.post(token, body)
    assert response.status_code == 400
    event = rig.events(job.id)[-1]
    assert event.type == "callback_rejected"
    assert len(event.payload["raw_excerpt"]) <= REFUSED_EXCERPT


def test_a_task_id_that_is_not_the_jobs_gets_409_and_is_recorded_as_suspicious(
    make_rig: Any,
) -> None:
    rig = make_rig()
    job, token = rig.new_job("mismatch")
    response = rig.post(token, callback("complete", task_id="someone-elses"))
    assert response.status_code == 409
    last = rig.events(job.id)[-1]
    assert last.type == "callback_suspicious"
    assert rig.job(job.id).callbacks == 0


# --- signatures (kie) ---------------------------------------------------------------------


def _signed(rig: Any, key: str = KEY, task_id: str = TASK, offset: int = 0) -> dict[str, str]:
    ts = str(int(rig.clock().timestamp()) + offset)
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(key, task_id, ts)}


def _signing_rig(make_rig: Any) -> Any:
    return make_rig(auth=CallbackAuth(signature=KieSignature(KEY, 300)))


def test_a_correctly_signed_callback_is_accepted(make_rig: Any) -> None:
    rig = _signing_rig(make_rig)
    _, token = rig.new_job("signed")
    assert rig.post(token, callback(), headers=_signed(rig)).status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing"),
        ({"X-Webhook-Timestamp": "1735732800"}, "missing"),
        ({"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "AAAA"}, "unix time"),
        ({"X-Webhook-Timestamp": "1735732800", "X-Webhook-Signature": "!!"}, "base64"),
        ({"X-Webhook-Timestamp": "1735732800", "X-Webhook-Signature": "AAAA"}, "does not match"),
    ],
)
def test_a_bad_signature_gets_401_and_is_recorded(
    make_rig: Any, headers: dict[str, str], message: str
) -> None:
    rig = _signing_rig(make_rig)
    job, token = rig.new_job("unsigned")
    response = rig.post(token, callback(), headers=headers)
    assert response.status_code == 401
    assert message in response.get_json()["msg"]
    assert rig.events(job.id)[-1].type == "callback_unauthorized"
    assert rig.job(job.id).callbacks == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [("wrong_key", "does not match"), ("stale", "too old"), ("future", "too new")],
)
def test_a_wrong_key_or_an_old_or_future_timestamp_gets_401(
    make_rig: Any, case: str, message: str
) -> None:
    rig = _signing_rig(make_rig)
    _, token = rig.new_job("sig")
    headers = {
        "wrong_key": _signed(rig, key="another-key"),
        "stale": _signed(rig, offset=-301),
        "future": _signed(rig, offset=301),
    }[case]
    response = rig.post(token, callback(), headers=headers)
    assert response.status_code == 401
    assert message in response.get_json()["msg"]


def test_a_replayed_request_gets_401(make_rig: Any) -> None:
    rig = _signing_rig(make_rig)
    _, token = rig.new_job("replay")
    headers = _signed(rig)
    assert rig.post(token, callback("text"), headers=headers).status_code == 200
    response = rig.post(token, callback("text"), headers=headers)  # the same request again
    assert response.status_code == 401
    assert "replay" in response.get_json()["msg"]


def test_two_callbacks_of_one_task_signed_in_the_same_second_are_both_accepted(
    make_rig: Any,
) -> None:
    """kie signs taskId.timestamp only: two stages in one second share a signature."""
    rig = _signing_rig(make_rig)
    _, token = rig.new_job("same-second")
    headers = _signed(rig)
    assert rig.post(token, callback("text"), headers=headers).status_code == 200
    assert rig.post(token, callback("complete"), headers=headers).status_code == 200


def test_a_signature_for_another_task_does_not_verify(make_rig: Any) -> None:
    rig = _signing_rig(make_rig)
    _, token = rig.new_job("other-task")
    response = rig.post(token, callback(), headers=_signed(rig, task_id="task-9999"))
    assert response.status_code == 401


# --- source addresses -----------------------------------------------------------------------


def _sources(make_rig: Any, allowed: list[str], proxies: list[str] | None = None) -> Any:
    policy = SourcePolicy.from_strings(allowed, proxies or [])
    return make_rig(auth=CallbackAuth(sources=policy))


def test_a_caller_outside_the_allowlist_gets_403_and_writes_nothing(make_rig: Any) -> None:
    rig = _sources(make_rig, ["203.0.113.0/24"])
    job, token = rig.new_job("src")
    before = len(rig.events(job.id))
    assert rig.post(token, callback(), remote="198.51.100.7").status_code == 403
    assert len(rig.events(job.id)) == before
    assert rig.post(token, callback(), remote="203.0.113.9").status_code == 200


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_rig: Any) -> None:
    rig = _sources(make_rig, ["203.0.113.0/24"])
    _, token = rig.new_job("xff")
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    response = rig.post(token, callback(), headers=spoofed, remote="198.51.100.7")
    assert response.status_code == 403


def test_a_trusted_proxy_forwards_the_callers_address(make_rig: Any) -> None:
    rig = _sources(make_rig, ["203.0.113.0/24"], ["10.0.0.0/8"])
    _, token = rig.new_job("proxy")
    # the client may prepend anything; only the hop the proxy appended counts
    ok = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    assert rig.post(token, callback(), headers=ok, remote="10.1.2.3").status_code == 200
    bad = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    assert rig.post(token, callback(), headers=bad, remote="10.1.2.3").status_code == 403


# --- verify mode: forged callbacks ---------------------------------------------------------

REAL = UpstreamReport(
    status=UpstreamStatus.SUCCESS,
    task_id=TASK,
    tracks=(
        Track(id="a", audio_url="http://127.0.0.1:8900/files/a.mp3?expires=1&sig=x"),
        Track(id="b", audio_url="http://127.0.0.1:8900/files/b.mp3?expires=1&sig=y"),
    ),
)


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "attacker.example"])
def test_a_forged_complete_callback_never_becomes_the_result(make_rig: Any, host: str) -> None:
    rig = make_rig(mode="verify")
    job, token = rig.new_job("forged")
    forged = callback("complete", tracks=[track("a", host=host), track("b", host=host)])
    assert rig.post(token, forged).status_code == 200
    assert rig.job(job.id).result is None  # a callback in verify mode only wakes the poller
    polled = rig.poll(job.id, REAL)
    assert polled.state == JobState.SUCCEEDED
    urls = json.dumps(polled.result)
    assert host not in urls and "127.0.0.1:8900" in urls
    contradicted = [e for e in rig.events(job.id) if e.type == "callback_contradicted"]
    assert len(contradicted) == 1
    assert host in contradicted[0].note
    # a later poll reports the same callback no more
    rig.poll(job.id, REAL)
    assert sum(e.type == "callback_contradicted" for e in rig.events(job.id)) == 1


def test_a_genuine_callback_with_freshly_signed_urls_is_not_contradicted(make_rig: Any) -> None:
    rig = make_rig(mode="verify")
    job, token = rig.new_job("genuine")
    genuine = callback(
        "complete",
        tracks=[
            {"id": "a", "audio_url": "http://127.0.0.1:8900/files/a.mp3?expires=2&sig=q"},
            {"id": "b", "audio_url": "http://127.0.0.1:8900/files/b.mp3?expires=2&sig=r"},
        ],
    )
    assert rig.post(token, genuine).status_code == 200
    rig.poll(job.id, REAL)
    assert not [e for e in rig.events(job.id) if e.type == "callback_contradicted"]


def test_a_forged_error_callback_never_fails_a_job_the_upstream_completes(make_rig: Any) -> None:
    rig = make_rig(mode="verify")
    job, token = rig.new_job("forged-error")
    response = rig.post(token, callback("error", code=501))
    assert response.status_code == 200
    assert rig.job(job.id).state == JobState.PENDING
    polled = rig.poll(job.id, REAL)
    assert polled.state == JobState.SUCCEEDED and polled.error is None
    [event] = [e for e in rig.events(job.id) if e.type == "callback_contradicted"]
    assert "claimed FAILED" in event.note


def test_a_forged_success_is_contradicted_by_a_real_failure(make_rig: Any) -> None:
    rig = make_rig(mode="verify")
    job, token = rig.new_job("forged-success")
    rig.post(token, callback("complete", tracks=[track("a")]))
    failed = UpstreamReport(
        status=UpstreamStatus.FAILED, task_id=TASK, error_code=501, error_message="no"
    )
    assert rig.poll(job.id, failed).state == JobState.FAILED
    [event] = [e for e in rig.events(job.id) if e.type == "callback_contradicted"]
    assert "claimed SUCCESS" in event.note
