"""The hard interleavings behind "never pay twice, never track the wrong task", one test each.

Each drives the real submitter, poller, callback endpoint, reconciler and SQLite store; the
upstream is a provider stub that does what the case needs (create a task and answer 5xx,
post a callback before answering, ...). See docs/states.md ("Attempts and tokens").
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.daemon.breaker import CircuitBreaker
from orchestrator.daemon.ratelimit import SlidingWindow
from orchestrator.daemon.submitter import Submitter
from orchestrator.exceptions import StoreError, UpstreamAmbiguous, UpstreamUnavailable
from orchestrator.machine import Policy
from orchestrator.observations import Track, UpstreamReport, UpstreamStatus
from orchestrator.reconciler import Reconciler
from orchestrator.service import JobService
from orchestrator.states import JobState
from orchestrator.stores.base import POLL, SUBMIT
from orchestrator.tokens import CALLBACK_PREFIX
from orchestrator.web.callback_auth import CallbackAuth, KieSignature, sign
from tests.integration.web.conftest import SONG, callback, track

S = JobState
U = UpstreamStatus
KEY = "hmac-secret-0123456789"


class Upstream:
    """A provider whose submits do what the test says, posting callbacks through the rig."""

    profile = "sunoapi"

    def __init__(self, rig: Any) -> None:
        self.rig = rig
        self.sent: list[str] = []  #: task ids created, one per submit that reached it
        self.tokens: list[str] = []
        self.answer = "ok"  #: ok | 5xx | timeout
        self.callback_first = False

    def submit(self, kind: str, params: Any, callback_url: str) -> str:
        token = callback_url.rsplit(CALLBACK_PREFIX, 1)[1]
        task_id = f"task-{len(self.sent) + 1}"
        self.sent.append(task_id)
        self.tokens.append(token)
        if self.callback_first:
            assert self.rig.post(token, callback("text", task_id=task_id)).status_code == 200
        if self.answer == "5xx":
            raise UpstreamUnavailable("sunoapi submit: HTTP 500", http_status=500)
        if self.answer == "timeout":
            raise UpstreamAmbiguous("sunoapi submit: ReadTimeout after sending", outage=True)
        return task_id

    def fetch(self, kind: str, task_id: str) -> UpstreamReport:
        return self.rig.upstream.fetch(kind, task_id)

    def parse_callback(self, kind: str, body: Any) -> UpstreamReport:
        return self.rig.upstream.parse_callback(kind, body)


def submitter(rig: Any, upstream: Upstream, policy: Policy | None = None) -> Submitter:
    reconciler = Reconciler(rig.store, policy or Policy())
    return Submitter(
        rig.store,
        reconciler,
        upstream,  # type: ignore[arg-type]
        owner="submitter",
        public_url="http://127.0.0.1:8787",
        limiter=SlidingWindow(100, 10.0),
        breaker=CircuitBreaker("test"),
        lease_s=60,
        clock=rig.clock,
        stop=threading.Event(),
    )


def queued(rig: Any, key: str) -> Any:
    service = JobService(rig.store, provider="sunoapi", reconciler=rig.reconciler, clock=rig.clock)
    job, _ = service.submit("generate_music", SONG, key)
    return job


def later(rig: Any, seconds: float) -> None:
    rig.now[0] += timedelta(seconds=seconds)


# --- case 1: a token-proven task is never submitted again ------------------------------------


@pytest.mark.parametrize("answer", ["5xx", "timeout"])
def test_a_callback_before_an_error_answer_proves_the_task_and_nothing_is_resent(
    make_rig: Any, answer: str
) -> None:
    rig = make_rig()
    job = queued(rig, "proved-early")
    upstream = Upstream(rig)
    upstream.answer, upstream.callback_first = answer, True
    sub = submitter(rig, upstream)
    assert sub.tick() == 1
    after = rig.job(job.id)
    assert (after.state, after.task_id) == (S.PENDING, "task-1")
    assert after.not_before is None and after.next_poll_at == rig.clock()
    for _ in range(5):  # whatever time passes, no second submit
        later(rig, 600)
        sub.tick()
    assert upstream.sent == ["task-1"]


def test_a_callback_after_a_5xx_calls_the_scheduled_resubmit_off(make_rig: Any) -> None:
    rig = make_rig()
    job = queued(rig, "proved-late")
    upstream = Upstream(rig)
    upstream.answer = "5xx"
    sub = submitter(rig, upstream)
    sub.tick()
    waiting = rig.job(job.id)
    assert waiting.state == S.QUEUED and waiting.not_before is not None  # a retry is scheduled
    # the upstream did create the task; its callback arrives while the job waits
    response = rig.post(upstream.tokens[0], callback("text", task_id="task-1"))
    assert response.status_code == 200
    after = rig.job(job.id)
    assert (after.state, after.task_id, after.not_before) == (S.PENDING, "task-1", None)
    later(rig, 600)
    sub.tick()
    assert upstream.sent == ["task-1"]
    assert rig.woken == [job.id]  # the verifying poll is asked for at once


# --- case 2: an old attempt's token never resolves a new attempt ------------------------------


def test_a_superseded_attempts_callback_is_recorded_answered_and_changes_nothing(
    make_rig: Any,
) -> None:
    rig = make_rig()
    job = queued(rig, "old-token")
    upstream = Upstream(rig)
    sub = submitter(rig, upstream)
    sub.tick()  # attempt 1 accepted: task-1
    service = JobService(rig.store, provider="sunoapi", reconciler=rig.reconciler, clock=rig.clock)
    service.cancel("old-token")
    service.retry("old-token")
    upstream.answer = "timeout"
    sub.tick()  # attempt 2 sent, answer lost: uncertain
    assert rig.job(job.id).state == S.UNCERTAIN
    late = callback("complete", task_id="task-1", tracks=[track("a1")])
    response = rig.post(upstream.tokens[0], late)  # attempt 1's token
    assert response.status_code == 200  # the upstream must stop retrying
    after = rig.job(job.id)
    assert (after.state, after.task_id) == (S.UNCERTAIN, None)
    [event] = [e for e in rig.events(job.id) if e.type == "callback_received"]
    assert event.payload["raw"] == late
    assert event.from_state == event.to_state == S.UNCERTAIN
    assert "superseded attempt" in event.note
    why = service.detail("old-token").why
    assert "task-1 (attempt 1)" in why and "paid" in why
    # attempt 2's own token still resolves it
    assert rig.post(upstream.tokens[1], callback("text", task_id="task-2")).status_code == 200
    assert (rig.job(job.id).state, rig.job(job.id).task_id) == (S.PENDING, "task-2")


# --- case 3: an ignored poll never leaves the job due at once --------------------------------


def test_a_poll_the_rules_ignore_moves_the_next_poll_out(make_rig: Any) -> None:
    rig = make_rig()
    job, _ = rig.new_job("ignored-poll")
    later(rig, 60)
    # record-info answers about another task: ignored, yet the job must not be due again
    after = rig.poll(job.id, UpstreamReport(U.PENDING, "someone-else"))
    assert after.next_poll_at is not None and after.next_poll_at > rig.clock()
    assert rig.store.claim(POLL, "poller", rig.clock(), 60, 10) == []


# --- case 4: upstream data the store cannot hold ---------------------------------------------


def test_two_tracks_with_one_id_are_two_files_in_trust_mode(make_rig: Any) -> None:
    rig = make_rig(mode="trust")
    job, token = rig.new_job("same-id")
    body = callback("complete", tracks=[track("dup"), track("dup", host="cdn2.example.com")])
    assert rig.post(token, body).status_code == 200
    after = rig.job(job.id)
    assert after.state == S.SUCCEEDED
    names = [a.name for a in after.artifacts]
    assert len(names) == len(set(names)) == 4  # two mp3 and two covers, none lost


def test_two_tracks_with_one_id_are_two_files_on_the_poll_path(make_rig: Any) -> None:
    rig = make_rig()
    job, _ = rig.new_job("same-id-poll")
    tracks = tuple(Track("dup", audio_url=f"https://cdn.example.com/{n}.mp3") for n in range(2))
    after = rig.poll(job.id, UpstreamReport(U.SUCCESS, "task-0001", tracks=tracks))
    assert after.state == S.SUCCEEDED
    # named by place and title, never by the (repeated) id: still two files
    assert sorted(a.name for a in after.artifacts) == ["1-track.mp3", "2-track.mp3"]


def test_a_callback_that_can_never_be_stored_gets_a_4xx_not_a_503(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(mode="trust")
    job, token = rig.new_job("unstorable")
    real_apply = rig.store.apply

    def refuse_callbacks(current: Any, changes: Any, event: Any, *args: Any, **kw: Any) -> Any:
        if event.type == "callback_received":
            raise ValueError("the store cannot hold this")  # what no retry will change
        return real_apply(current, changes, event, *args, **kw)

    monkeypatch.setattr(rig.store, "apply", refuse_callbacks)
    response = rig.post(token, callback("complete", tracks=[track("x")]))
    assert response.status_code == 400
    assert "cannot be recorded" in response.get_json()["msg"]
    [refusal] = [e for e in rig.events(job.id) if e.type == "callback_rejected"]
    assert refusal.payload["raw_excerpt"]
    assert rig.job(job.id).state == S.PENDING


def test_a_poll_answer_that_cannot_be_stored_backs_off_instead_of_looping(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    job, _ = rig.new_job("unstorable-poll")
    real_apply = rig.store.apply

    def refuse_polls(current: Any, changes: Any, event: Any, *args: Any, **kw: Any) -> Any:
        if event.type == "polled":
            raise ValueError("the store cannot hold this")
        return real_apply(current, changes, event, *args, **kw)

    monkeypatch.setattr(rig.store, "apply", refuse_polls)
    later(rig, 60)
    after = rig.poll(job.id, UpstreamReport(U.PENDING, "task-0001"))
    assert after.poll_failures == 1 and after.polls == 1
    assert after.next_poll_at is not None and after.next_poll_at > rig.clock()
    assert after.state == S.PENDING  # nothing lost, and not re-polled once per lease


# --- case 8: the kie replay memory -----------------------------------------------------------


def test_a_signed_callback_whose_commit_failed_is_accepted_when_the_upstream_retries(
    make_rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(auth=CallbackAuth(signature=KieSignature(KEY, 300)))
    job, token = rig.new_job("retry-after-503")
    ts = str(int(rig.clock().timestamp()))
    headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(KEY, "task-0001", ts)}
    real_apply = rig.store.apply
    fail_once = [True]

    def flaky(current: Any, changes: Any, event: Any, *args: Any, **kw: Any) -> Any:
        if event.type == "callback_received" and fail_once:
            fail_once.clear()
            raise StoreError("database write failed: disk I/O error")
        return real_apply(current, changes, event, *args, **kw)

    monkeypatch.setattr(rig.store, "apply", flaky)
    body = callback("text")
    assert rig.post(token, body, headers=headers).status_code == 503
    assert rig.post(token, body, headers=headers).status_code == 200  # not a "replay"
    assert rig.post(token, body, headers=headers).status_code == 401  # now it is one
    assert [e.payload["raw"] for e in rig.events(job.id) if e.type == "callback_received"] == [
        json.loads(json.dumps(body))
    ]


# --- case 6: the breaker counts outages only, and half-open lets one request through ---------


def test_a_half_open_breaker_lets_exactly_one_poll_through(make_rig: Any) -> None:
    rig = make_rig()
    jobs = [rig.new_job(f"half-open-{n}")[0] for n in range(5)]
    later(rig, 120)
    clock = [1000.0]
    breaker = CircuitBreaker("test", threshold=1, cooldown_s=30, clock=lambda: clock[0])
    breaker.failure()
    clock[0] += 30  # half-open
    poller = rig.poller()
    poller.breaker = breaker

    class Counting:
        profile = "sunoapi"
        calls = 0

        def fetch(self, kind: str, task_id: str) -> UpstreamReport:
            Counting.calls += 1
            raise UpstreamUnavailable("still down")

    poller.provider = Counting()  # type: ignore[assignment]
    claimed = poller.tick()
    poller.executor.shutdown(wait=True)
    assert claimed == 1 and Counting.calls == 1
    assert len(rig.store.claim(POLL, "other", rig.clock(), 60, 10)) == len(jobs) - 1
    assert rig.store.claim(SUBMIT, "other", rig.clock(), 60, 10) == []


# --- case 5: params JSON cannot hold are refused over HTTP too -------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "generate_music", "key": "n1", "params": {"customMode": false, '
        b'"instrumental": true, "model": "V4_5", "prompt": "p", "weight": NaN}}',
        b'{"kind": "generate_music", "key": "n2", "params": {"customMode": false, '
        b'"instrumental": true, "model": "V4_5", "prompt": "p", "weight": -Infinity}}',
    ],
    ids=["nan", "infinity"],
)
def test_the_job_api_refuses_params_json_cannot_hold_and_records_nothing(
    make_rig: Any, body: bytes
) -> None:
    rig = make_rig()
    response = rig.client.post(
        "/api/jobs",
        data=body,
        content_type="application/json",
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert response.status_code == 400
    assert "JSON" in response.get_json()["msg"]
    assert rig.store.list_jobs() == []
