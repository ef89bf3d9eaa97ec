"""Pure rules behind the hard interleavings (docs/states.md, "Attempts and tokens"):
attempts, polls the rules ignore, the late window, jitter, the breaker, the replay memory,
strict JSON. Each test names the case it guards.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.main import main
from orchestrator.cli.params import parse_param
from orchestrator.config import load_settings
from orchestrator.daemon.breaker import BreakerState, CircuitBreaker
from orchestrator.exceptions import (
    ConfigError,
    InvalidParams,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTransient,
    UpstreamUnavailable,
)
from orchestrator.jsonvalues import json_problem
from orchestrator.kinds import validate_params
from orchestrator.logs import _strict_log_json
from orchestrator.machine import Policy, decide, jittered_backoff
from orchestrator.observations import (
    CallbackReceived,
    Polled,
    PollFailed,
    RetryRequested,
    SubmitAccepted,
    SubmitFailed,
    SubmitStarted,
    UpstreamReport,
)
from orchestrator.providers import make_provider
from orchestrator.states import JobState
from orchestrator.stores import open_store
from orchestrator.web.callback_auth import ReplayCache
from tests.unit.test_machine_table import NOW, POLICY, TASK, U, check, fold, job_in, report

S = JobState

# --- cases 1 and 2: attempts ------------------------------------------------------------------


def test_every_submit_and_every_retry_is_a_new_attempt() -> None:
    job = job_in(S.QUEUED)
    started = fold(job, SubmitStarted(token_hash="h"))
    assert started.attempt == job.attempt + 1
    failed = fold(started, SubmitFailed(retryable=False, message="no", attempt=started.attempt))
    retried = fold(failed, RetryRequested())
    assert retried.attempt == started.attempt + 1  # attempt 1's tokens no longer count
    assert retried.submit_attempts == 0


def test_an_answer_of_a_superseded_attempt_changes_nothing() -> None:
    job = job_in(S.SUBMITTING, attempt=3)
    assert decide(job, SubmitAccepted("old-task", attempt=2), NOW, POLICY) is None
    assert decide(job, SubmitFailed(True, "busy", attempt=2), NOW, POLICY) is None
    assert check(job, SubmitAccepted(TASK, attempt=3)).to_state == S.PENDING


def test_a_superseded_attempts_callback_never_resolves_uncertain() -> None:
    job = job_in(S.UNCERTAIN, attempt=2)
    stale = CallbackReceived(report(U.SUCCESS), attempt=1)
    assert decide(job, stale, NOW, POLICY) is None
    current = CallbackReceived(report(U.TEXT_SUCCESS), attempt=2)
    assert check(job, current).to_state == S.PENDING


def test_a_submit_error_after_the_token_proved_acceptance_goes_to_pending() -> None:
    proved = job_in(S.SUBMITTING, attempt=1, task_id="from-callback")
    for answer in (SubmitFailed(True, "HTTP 500"), SubmitFailed(False, "code 400")):
        transition = check(proved, answer)
        assert transition.to_state == S.PENDING
        assert transition.changes["task_id"] == "from-callback"
        assert transition.changes["next_poll_at"] == NOW and transition.wake_poller


def test_a_callback_of_the_sent_attempt_while_queued_for_its_retry_calls_it_off() -> None:
    waiting = job_in(S.QUEUED, attempt=1, submit_attempts=1, not_before=NOW + timedelta(seconds=4))
    transition = check(waiting, CallbackReceived(report(U.TEXT_SUCCESS), attempt=1))
    assert transition.to_state == S.PENDING
    assert transition.changes["not_before"] is None
    # after `retry` (a new attempt) the same token is superseded
    retried = replace(waiting, submit_attempts=0, attempt=2)
    assert decide(retried, CallbackReceived(report(U.SUCCESS), attempt=1), NOW, POLICY) is None


# --- case 3: every poll of a pollable job leaves a future next poll ---------------------------

IGNORED_POLLS = {
    "another task's id": (S.PENDING, UpstreamReport(U.PENDING, "someone-else")),
    "failure after confirmed success": (S.SUCCEEDED, report(U.FAILED)),
    "non-success while downloading": (S.SUCCEEDED, report(U.FIRST_SUCCESS)),
    "success without URLs while downloading": (S.SUCCEEDED, report(U.SUCCESS, urls=False)),
}


@pytest.mark.parametrize("case", IGNORED_POLLS)
def test_a_poll_the_rules_ignore_still_moves_the_next_poll_out(case: str) -> None:
    state, answer = IGNORED_POLLS[case]
    job = job_in(state, next_poll_at=NOW - timedelta(seconds=1))
    transition = check(job, Polled(answer))
    assert transition.to_state == state
    assert transition.changes["next_poll_at"] > NOW
    if state == S.SUCCEEDED:
        assert "error" not in transition.changes  # a success is never undone


# --- case 7: the late window bounds failing polls too ----------------------------------------


def test_a_timed_out_job_whose_polls_keep_failing_stops_at_the_end_of_its_late_window() -> None:
    policy = Policy(late_window_s=1800.0, late_poll_interval_s=300.0)
    job = job_in(S.TIMED_OUT, next_poll_at=NOW)
    assert job.deadline_at is not None
    now = NOW
    for _ in range(100):
        if job.next_poll_at is None:
            break
        now = max(now, job.next_poll_at)
        job = fold(job, PollFailed("HTTP 500"), now, policy)
    assert job.next_poll_at is None
    assert now <= job.deadline_at + timedelta(seconds=1800)
    assert job.state == S.TIMED_OUT


# --- case 9: backoff with jitter, reproducible ------------------------------------------------


def test_backoffs_are_spread_across_jobs_bounded_and_reproducible() -> None:
    policy = Policy()
    jobs = [replace(job_in(S.SUBMITTING), key=f"job-{n}") for n in range(50)]
    delays = [jittered_backoff(j, "submit", 3, 2.0, 300.0, policy) for j in jobs]
    assert len(set(delays)) == len(delays)  # no lockstep after an outage
    assert all(4.0 <= d <= 8.0 for d in delays)  # within [1 - jitter, 1] of the plain 8 s
    again = [jittered_backoff(j, "submit", 3, 2.0, 300.0, policy) for j in jobs]
    assert again == delays
    seeded = [jittered_backoff(j, "submit", 3, 2.0, 300.0, Policy(jitter_seed=7)) for j in jobs]
    assert seeded != delays


def test_submit_and_poll_retries_use_the_jitter() -> None:
    a, b = (replace(job_in(S.SUBMITTING), key=k) for k in "ab")
    policy = Policy()
    busy = SubmitFailed(retryable=True, message="busy")
    assert (
        check(a, busy, policy=policy).changes["not_before"]
        != check(b, busy, policy=policy).changes["not_before"]
    )
    pa, pb = (replace(job_in(S.PENDING), key=k) for k in "ab")
    fail = PollFailed("HTTP 500")
    assert (
        check(pa, fail, policy=policy).changes["next_poll_at"]
        != check(pb, fail, policy=policy).changes["next_poll_at"]
    )


# --- case 6: the breaker counts outages only; half-open is one probe --------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "answer",
    [
        UpstreamTransient("task not found yet", code=404),
        UpstreamProtocolError("garbage"),
        UpstreamRejected("code 400"),
    ],
    ids=["not-found-yet", "protocol", "rejected"],
)
def test_answers_that_prove_the_upstream_is_up_never_open_the_breaker(
    answer: Exception,
) -> None:
    breaker = CircuitBreaker("up", threshold=3, cooldown_s=30, clock=Clock())
    for _ in range(20):
        breaker.record(answer)  # type: ignore[arg-type]
    assert breaker.state() == BreakerState.CLOSED


def test_outages_open_the_breaker_and_half_open_admits_exactly_one() -> None:
    clock = Clock()
    breaker = CircuitBreaker("down", threshold=3, cooldown_s=30, clock=clock)
    for _ in range(3):
        breaker.record(UpstreamUnavailable("HTTP 503"))
    assert breaker.state() == BreakerState.OPEN and breaker.room(20) == 0
    clock.now += 30
    assert breaker.state() == BreakerState.HALF_OPEN
    assert breaker.room(20) == 1  # a tick prepares one request, not a batch
    assert breaker.allow()
    assert breaker.room(20) == 0 and not breaker.allow()
    breaker.record(None)
    assert breaker.state() == BreakerState.CLOSED and breaker.room(20) == 20


# --- case 8: the replay memory ---------------------------------------------------------------


def test_the_replay_memory_remembers_only_committed_requests() -> None:
    cache = ReplayCache()
    assert cache.reserve("sig:body1", now=0)
    assert not cache.reserve("sig:body1", now=0)  # in progress: a concurrent duplicate
    cache.release("sig:body1")  # its commit failed: the upstream's retry must pass
    assert cache.reserve("sig:body1", now=1)
    cache.commit("sig:body1", expires_at=300)
    assert not cache.reserve("sig:body1", now=2)
    assert cache.reserve("sig:body2", now=2)  # another body under the same signature


def test_the_replay_memory_expires_in_timestamp_order_and_stays_bounded() -> None:
    cache = ReplayCache(max_items=1000)
    for n in range(5000):  # arrivals out of timestamp order
        cache.add(f"k{n}", expires_at=1000 + (n * 7919) % 600, now=0)
    assert len(cache) == 1000

    def expiry(n: int) -> int:
        return 1000 + (n * 7919) % 600

    kept = {n for n in range(5000) if not cache.reserve(f"k{n}", now=0)}
    assert len(kept) == 1000  # a full memory forgot the earliest-expiring keys first
    assert max(expiry(n) for n in range(5000) if n not in kept) <= min(map(expiry, kept))
    cache.add("late", expires_at=5000, now=1700)  # everything before 1700 has expired
    assert len(cache) == 1


# --- case 5: params that cannot be sent are refused when the job is recorded ------------------


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "x", "weight": math.nan},
        {"prompt": "x", "weight": math.inf},
        {"prompt": "x", "nested": [{"w": -math.inf}]},
        {"prompt": "x", "bad": "\ud800"},
        {"prompt": "x", "obj": object()},
    ],
    ids=["nan", "inf", "nested-inf", "surrogate", "object"],
)
def test_params_that_json_cannot_hold_are_refused(params: dict[str, object]) -> None:
    full = {"customMode": False, "instrumental": True, "model": "V4_5", **params}
    with pytest.raises(InvalidParams, match="strict JSON"):
        validate_params("generate_music", full)


def test_the_cli_takes_nan_as_a_string_and_refuses_it_inside_params_json() -> None:
    assert parse_param("prompt=NaN") == ("prompt", "NaN")
    assert parse_param("weight=1.5") == ("weight", 1.5)


def test_a_config_job_with_nan_params_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[jobs]]\nkey = "n"\nkind = "generate_music"\n'
        'params = { customMode = false, instrumental = true, model = "V4_5", prompt = "p",'
        " weight = nan }\n"
    )
    with pytest.raises(ConfigError, match="strict JSON"):
        load_settings(config)


def test_a_request_that_cannot_be_built_is_a_final_error_and_nothing_is_sent() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"code": 200, "data": {"taskId": "t"}})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = make_provider("sunoapi", client, base_url="http://upstream.test", api_key="k")
    with pytest.raises(UpstreamRejected, match="not sent"):
        provider.submit("generate_music", {"prompt": "p", "weight": math.nan}, "http://cb/x")
    assert sent == []


def test_everything_we_print_serve_or_log_is_strict_json() -> None:
    from orchestrator.stores.records import dumps as _dumps
    from orchestrator.web.app import _StrictJSON

    with pytest.raises(ValueError):
        _dumps({"x": math.nan})
    from flask import Flask

    with pytest.raises(ValueError):
        _StrictJSON(Flask("t")).dumps({"x": math.inf})
    line = _strict_log_json({"event": "e", "value": math.nan})
    assert json.loads(line, parse_constant=lambda c: pytest.fail(c)) == {
        "event": "e",
        "value": "nan",
    }
    assert json_problem({"a": [1, 2.5, "s", None, True]}) is None


# --- case 10: a storage path that cannot be created -----------------------------------------


@pytest.mark.parametrize("where", ["file-in-the-way", "proc"])
def test_a_storage_path_that_cannot_be_created_is_a_one_line_config_error(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.logs

    # main() configures process-wide logging onto this test's captured stderr: keep it out
    monkeypatch.setattr(orchestrator.logs, "configure", lambda *a, **k: None)
    (tmp_path / "blocker").write_text("")
    path = tmp_path / "blocker" / "sub" / "x.db" if where == "file-in-the-way" else "/proc/x.db"
    with pytest.raises(ConfigError, match=r"\[storage\] url"):
        open_store(f"sqlite:///{path}")
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{path}"\n')
    assert main(["--config", str(config), "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: [storage] url")
    assert "Traceback" not in err
