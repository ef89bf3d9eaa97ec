"""Fuzz the callback endpoint: >= 10,000 generated requests against the real app and store.

Every answer must be one of the documented refusals or a 200, never a 5xx, and a pending job
in verify mode must stay pending with no result and no error, whatever arrives. Each example
sends a batch of requests (hypothesis' own overhead per example dominates otherwise); the
store lives on tmpfs when there is one, since it fsyncs every commit.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.states import JobState
from orchestrator.web.callback_auth import CallbackAuth, KieSignature, sign
from tests.integration.web.conftest import TASK, Rig

ALLOWED = {200, 400, 401, 403, 404, 409, 413, 415}
#: four functions * 650 examples * 4 requests = 10,400 requests
EXAMPLES = 650
BATCH = 4
PER_FUNCTION = EXAMPLES * BATCH
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
urls = st.one_of(
    st.sampled_from(
        [
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/a.mp3",
            "http://[::1]:22/",
            "file:///etc/passwd",
            "https://cdn.example.com/a.mp3?sig=1",
            "gopher://127.0.0.1:6379/_FLUSHALL",
            "",
        ]
    ),
    st.text(max_size=30),
)
tracks = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=12), st.integers(), st.none())},
    optional={
        "audio_url": urls,
        "stream_url": urls,
        "image_url": urls,
        "title": json_values,
        "duration": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)
        ),
    },
)
near_valid = st.fixed_dictionaries(
    {
        "code": st.one_of(
            st.sampled_from([200, 400, 451, 500, 501, 531]), st.integers(), st.text(max_size=4)
        ),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "callbackType": st.one_of(
                    st.sampled_from(["text", "first", "complete", "error"]),
                    st.text(max_size=8),
                    st.integers(),
                ),
                "task_id": st.one_of(st.just(TASK), st.text(max_size=12), st.integers(), st.none()),
                "data": st.one_of(st.lists(tracks, max_size=3), json_values),
                "video_url": urls,
            },
        ),
    },
    optional={"msg": st.one_of(st.text(max_size=12), st.integers())},
)
header_text = st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    header_text,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _batch(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)


def _check(rig: Rig, job_id: int, status: int, sent: list[int]) -> None:
    sent[0] += 1
    assert status in ALLOWED, status
    job = rig.job(job_id)
    assert job.state == JobState.PENDING
    assert job.result is None and job.error is None


def _rig(make_rig: Any, directory: Path, **kw: Any) -> tuple[Rig, int, str]:
    rig = make_rig(directory=directory, **kw)
    job, token = rig.new_job("fuzzed")
    return rig, job.id, token


def test_fuzz_json_bodies(memory_dir: Path, make_rig: Any) -> None:
    rig, job_id, token = _rig(make_rig, memory_dir)
    sent = [0]

    @FUZZ
    @given(bodies=_batch(st.one_of(json_values, near_valid)))
    def run(bodies: list[Any]) -> None:
        for body in bodies:
            response = rig.post(token, body)
            _check(rig, job_id, response.status_code, sent)

    run()
    assert sent[0] >= PER_FUNCTION


def test_fuzz_raw_bytes_content_types_and_sizes(memory_dir: Path, make_rig: Any) -> None:
    rig, job_id, token = _rig(make_rig, memory_dir, max_body_bytes=4096)
    sent = [0]
    raw = st.one_of(
        st.binary(max_size=200),
        st.binary(min_size=4097, max_size=6000),
        near_valid.map(lambda b: json.dumps(b).encode()),
        st.text(max_size=100).map(str.encode),
    )

    @FUZZ
    @given(requests=_batch(st.tuples(raw, content_types)))
    def run(requests: list[tuple[bytes, str]]) -> None:
        for data, content_type in requests:
            try:
                response = rig.post(token, data=data, content_type=content_type)
            except ValueError:  # the test client refuses a header it cannot write
                sent[0] += 1
                continue
            _check(rig, job_id, response.status_code, sent)

    run()
    assert sent[0] >= PER_FUNCTION


def test_fuzz_tokens(memory_dir: Path, make_rig: Any) -> None:
    rig, job_id, token = _rig(make_rig, memory_dir)
    sent = [0]
    unknown_shaped = st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
        min_size=32,
        max_size=128,
    )
    candidates = st.one_of(
        st.just(token),
        unknown_shaped,
        st.text(max_size=150),
        st.just(token[:-1]),
        st.just(token + "x"),
    )

    @FUZZ
    @given(requests=_batch(st.tuples(candidates, near_valid)))
    def run(requests: list[tuple[str, Any]]) -> None:
        for candidate, body in requests:
            before = rig.store.events(job_id, limit=1)[-1].id
            response = rig.client.post(
                "/callbacks/" + quote(candidate, safe=""),
                data=json.dumps(body),
                content_type="application/json",
            )
            _check(rig, job_id, response.status_code, sent)
            if candidate != token:
                assert response.status_code == 404
                assert rig.store.events(job_id, limit=1)[-1].id == before

    run()
    assert sent[0] >= PER_FUNCTION


def test_fuzz_signature_headers(memory_dir: Path, make_rig: Any) -> None:
    key = "fuzz-hmac-key"
    auth = CallbackAuth(signature=KieSignature(key, 300))
    rig, job_id, token = _rig(make_rig, memory_dir, auth=auth)
    now = int(rig.clock().timestamp())
    sent = [0]
    one = st.tuples(
        st.one_of(st.integers(min_value=now - 1000, max_value=now + 1000).map(str), header_text),
        st.one_of(header_text, st.binary(min_size=32, max_size=32).map(_b64)),
        st.booleans(),
        near_valid,
    )

    @FUZZ
    @given(requests=_batch(one))
    def run(requests: list[tuple[str, str, bool, Any]]) -> None:
        for timestamp, signature, genuine, body in requests:
            if genuine and timestamp.isdigit():
                signature = sign(key, TASK, timestamp)
            headers = {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": signature}
            try:
                response = rig.post(token, body, headers=headers)
            except ValueError:  # a header value the test client cannot send
                sent[0] += 1
                continue
            _check(rig, job_id, response.status_code, sent)

    run()
    assert sent[0] >= PER_FUNCTION
