"""The state machine, table-driven: every (state x observation type) pair, then the rules.

The first table has one row per pair of the 11 job states and the 20 observation types
``decide`` knows, each with the expected ``to_state`` (None: the observation changes nothing).
A second table crosses the states that talk to the upstream with every upstream status, as a
poll, a verify-mode callback and a trust-mode callback. The focused tests after it pin down
the numbers (backoff, Retry-After, jitter, confirmation re-polls, download attempts) and the
rules that need more than one step (URL refresh, late success, retry after a download failure).

All times are fixed: nothing here reads the clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.domain import Artifact, ArtifactState, Job, JobError
from orchestrator.kinds import artifacts_for
from orchestrator.machine import _HANDLERS, Policy, Transition, backoff, decide, jitter_factor
from orchestrator.observations import (
    ArtifactStored,
    CallbackReceived,
    CancelRequested,
    ChildrenCompleted,
    ChildrenRecorded,
    DeadlinePassed,
    DependencyFailed,
    DependencyRetried,
    DownloadFailed,
    DownloadFailure,
    Observation,
    ParentsCompleted,
    Polled,
    PollFailed,
    Resolution,
    ResolveRequested,
    RetryRequested,
    SubmitAccepted,
    SubmitFailed,
    SubmitLeaseExpired,
    SubmitStarted,
    SubmitUnknown,
    Track,
    UncertainGraceOver,
    UpstreamReport,
    UpstreamStatus,
)
from orchestrator.states import RANK, TERMINAL, JobState, is_allowed

S = JobState
U = UpstreamStatus

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  #: the job was created
ACCEPTED = T0 + timedelta(seconds=5)  #: the upstream accepted it
NOW = T0 + timedelta(hours=1)  #: when the observation under test arrives
TASK = "task-7f3a"
# exact schedules here; the jitter every backoff gets is tested on its own
POLICY = Policy(backoff_jitter=0.0)

# --- builders --------------------------------------------------------------------------------


def track(n: int, *, audio: bool = True, stream: bool = True, url_rev: int = 1) -> Track:
    return Track(
        id=f"trk-{n}",
        audio_url=f"https://cdn.example/v{url_rev}/trk-{n}.mp3" if audio else None,
        stream_url=f"https://cdn.example/stream/trk-{n}" if stream else None,
        image_url=f"https://cdn.example/v{url_rev}/trk-{n}.jpeg" if audio else None,
        title=f"Song {n}",
    )


def report(status: UpstreamStatus, *, url_rev: int = 1, urls: bool = True) -> UpstreamReport:
    """What the upstream says at each stage of a two-track generation."""
    if status == U.PENDING:
        tracks: tuple[Track, ...] = ()
    elif status == U.TEXT_SUCCESS:
        tracks = (track(1, audio=False), track(2, audio=False))
    elif status == U.FIRST_SUCCESS:
        tracks = (track(1, url_rev=url_rev), track(2, audio=False))
    elif status == U.SUCCESS:
        tracks = (track(1, audio=urls, url_rev=url_rev), track(2, audio=urls, url_rev=url_rev))
    else:
        return UpstreamReport(
            status, TASK, error_code=501, error_message="generation failed", raw_status="ERROR"
        )
    return UpstreamReport(status, TASK, tracks=tracks, raw_status=status.value)


def _success_artifacts() -> tuple[Artifact, ...]:
    artifacts = artifacts_for("generate_music", report(U.SUCCESS))
    assert artifacts is not None and len(artifacts) == 4  # two tracks, each mp3 + cover
    return artifacts


SUCCESS_ARTIFACTS = _success_artifacts()
FIRST_ARTIFACT = SUCCESS_ARTIFACTS[0].name


def stored(artifact: Artifact) -> Artifact:
    return replace(
        artifact,
        state=ArtifactState.STORED,
        path=f"/var/artifacts/song-1/{artifact.name}",
        bytes=1024,
        sha256="0" * 64,
        next_attempt_at=None,
    )


def job_in(state: JobState, **overrides: Any) -> Job:
    """A realistic job in ``state``: the fields that state implies are filled in."""
    fields: dict[str, Any] = {}
    accepted: dict[str, Any] = {
        "task_id": TASK,
        "submit_attempts": 1,
        "deadline_at": ACCEPTED + timedelta(seconds=POLICY.deadline_s),
    }
    if state == S.SUBMITTING:
        fields = {"submit_attempts": 1}
    elif state == S.UNCERTAIN:
        fields = {
            "submit_attempts": 1,
            "error": JobError("submit", None, "outcome unknown: connection reset"),
        }
    elif state == S.PENDING:
        fields = {
            **accepted,
            "upstream_status": "PENDING",
            "polls": 3,
            "next_poll_at": NOW + timedelta(seconds=10),
        }
    elif state == S.RUNNING:
        fields = {
            **accepted,
            "upstream_status": "TEXT_SUCCESS",
            "result": report(U.TEXT_SUCCESS).result_json(),
            "polls": 5,
            "next_poll_at": NOW + timedelta(seconds=10),
        }
    elif state in (S.SUCCEEDED, S.COMPLETED):
        fields = {
            **accepted,
            "upstream_status": "SUCCESS",
            "result": report(U.SUCCESS).result_json(),
            "polls": 8,
            "artifacts": tuple(
                replace(a, next_attempt_at=NOW - timedelta(minutes=1)) for a in SUCCESS_ARTIFACTS
            ),
        }
        if state == S.COMPLETED:
            fields["artifacts"] = tuple(stored(a) for a in SUCCESS_ARTIFACTS)
            fields["finished_at"] = NOW - timedelta(minutes=1)
    elif state == S.FAILED:
        fields = {
            **accepted,
            "upstream_status": "FAILED",
            "error": JobError("upstream", 501, "generation failed"),
            "finished_at": NOW - timedelta(minutes=1),
        }
    elif state == S.TIMED_OUT:
        fields = {
            **accepted,
            "upstream_status": "TEXT_SUCCESS",
            "result": report(U.TEXT_SUCCESS).result_json(),
            "error": JobError("deadline", None, "no outcome after 1800s"),
            "finished_at": ACCEPTED + timedelta(seconds=POLICY.deadline_s),
            "next_poll_at": NOW + timedelta(seconds=60),
        }
    elif state == S.WAITING:
        fields = {"parents": ("song-0",), "template": {"prompt": "${song-0.task_id}"}}
    elif state == S.CANCELLED:
        # cancelled while its submit was in flight: no taskId recorded
        fields = {"submit_attempts": 1, "finished_at": NOW - timedelta(minutes=1)}
    fields.update(overrides)
    return Job(
        id=1,
        key="song-1",
        kind="generate_music",
        provider="sunoapi",
        state=state,
        params={"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "piano"},
        created_at=T0,
        updated_at=T0,
        state_since=T0,
        **fields,
    )


def check(job: Job, obs: Observation, now: datetime = NOW, policy: Policy = POLICY) -> Transition:
    """decide, asserting a transition came back and that its edge is allowed."""
    transition = decide(job, obs, now, policy)
    assert transition is not None
    assert is_allowed(job.state, transition.to_state)
    return transition


def fold(job: Job, obs: Observation, now: datetime = NOW, policy: Policy = POLICY) -> Job:
    return check(job, obs, now, policy).apply(job, now)


# --- table 1: every state x every observation type -------------------------------------------

#: one representative observation of each type
SAMPLES: dict[type[Observation], Observation] = {
    SubmitStarted: SubmitStarted(token_hash="sha256:token"),
    SubmitAccepted: SubmitAccepted(task_id=TASK),
    SubmitFailed: SubmitFailed(retryable=True, message="rate limited", code=429),
    SubmitUnknown: SubmitUnknown(message="read timeout"),
    SubmitLeaseExpired: SubmitLeaseExpired(),
    Polled: Polled(report(U.SUCCESS)),
    PollFailed: PollFailed(message="service unavailable", code=503),
    CallbackReceived: CallbackReceived(report(U.SUCCESS), trusted=False),
    ArtifactStored: ArtifactStored(FIRST_ARTIFACT, f"/var/a/{FIRST_ARTIFACT}", 1024, "0" * 64),
    DownloadFailed: DownloadFailed(FIRST_ARTIFACT, DownloadFailure.TRANSIENT, "reset"),
    DeadlinePassed: DeadlinePassed(),
    UncertainGraceOver: UncertainGraceOver(),  # the default policy: hold
    CancelRequested: CancelRequested(),
    RetryRequested: RetryRequested(),
    ResolveRequested: ResolveRequested(Resolution.TASK_ID, task_id=TASK),
    ParentsCompleted: ParentsCompleted({"prompt": "resolved"}),
    ChildrenRecorded: ChildrenRecorded(("video.0", "video.1")),
    ChildrenCompleted: ChildrenCompleted(),
    DependencyFailed: DependencyFailed("parent_failed", "parent 'song-0' ended failed"),
    DependencyRetried: DependencyRetried("song-0"),
}
OBS_TYPES = list(SAMPLES)

NO: None = None  #: no transition
# columns, in the order of SAMPLES:
#    started     accepted   sub_fail   unknown    lease      polled     poll_fail  callback
#    stored      dl_failed  deadline   grace      cancel     retry      resolve
#    parents_ok  recorded   children   dep_fail   dep_retry
TABLE: dict[JobState, tuple[JobState | None, ...]] = {
    S.WAITING: (
        NO, NO, NO, NO, NO, NO, NO, NO,
        NO, NO, NO, NO, S.CANCELLED, NO, NO,
        S.QUEUED, NO, NO, S.FAILED, NO,  # not a for_each job: nothing of children
    ),
    S.QUEUED: (
        S.SUBMITTING, NO, NO, NO, NO, NO, NO, NO,
        NO, NO, NO, NO, S.CANCELLED, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.SUBMITTING: (
        NO, S.PENDING, S.QUEUED, S.UNCERTAIN, S.UNCERTAIN, NO, NO, S.SUBMITTING,  # early cb: hint
        NO, NO, NO, NO, S.CANCELLED, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.UNCERTAIN: (
        # a late answer decides (an error: nothing created, retry); so does the token
        NO, S.PENDING, S.QUEUED, NO, NO, NO, NO, S.PENDING,
        NO, NO, NO, NO, S.CANCELLED, NO, S.PENDING,
        NO, NO, NO, NO, NO,
    ),
    S.PENDING: (
        NO, NO, NO, NO, NO, S.SUCCEEDED, S.PENDING, S.PENDING,  # verify callback: poll now
        NO, NO, S.TIMED_OUT, NO, S.CANCELLED, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.RUNNING: (
        NO, NO, NO, NO, NO, S.SUCCEEDED, S.RUNNING, S.RUNNING,
        NO, NO, S.TIMED_OUT, NO, S.CANCELLED, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.SUCCEEDED: (
        NO, NO, NO, NO, NO, NO, NO, NO,  # same URLs: a duplicate; not polled: no backoff
        S.SUCCEEDED, S.SUCCEEDED, NO, NO, S.CANCELLED, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.COMPLETED: (
        NO, NO, NO, NO, NO, NO, NO, NO,
        NO, NO, NO, NO, NO, NO, NO,
        NO, NO, NO, NO, NO,
    ),
    S.FAILED: (
        NO, NO, NO, NO, NO, NO, NO, NO,
        NO, NO, NO, NO, NO, S.QUEUED, NO,
        NO, NO, NO, NO, NO,
    ),
    S.TIMED_OUT: (
        NO, NO, NO, NO, NO, S.SUCCEEDED, S.TIMED_OUT, S.TIMED_OUT,  # late success; late polling
        NO, NO, NO, NO, S.CANCELLED, S.QUEUED, NO,
        NO, NO, NO, NO, NO,
    ),
    S.CANCELLED: (
        NO, S.CANCELLED, NO, NO, NO, NO, NO, NO,  # accepted after cancel: the taskId is recorded
        NO, NO, NO, NO, NO, S.QUEUED, NO,
        NO, NO, NO, NO, NO,
    ),
}  # fmt: skip


def test_a_transition_is_frozen_through_and_through() -> None:
    transition = check(job_in(S.PENDING), Polled(report(U.TEXT_SUCCESS)))
    with pytest.raises(TypeError):
        transition.changes["state"] = S.FAILED  # type: ignore[index]
    more = transition.with_changes(hint="SUCCESS")
    assert more.changes["hint"] == "SUCCESS" and "hint" not in transition.changes
    kept = transition.with_changes(defaults=True, upstream_status="PENDING")
    assert kept.changes["upstream_status"] == transition.changes["upstream_status"]


def test_table_covers_every_state_and_observation_type() -> None:
    assert set(TABLE) == set(JobState)
    assert set(OBS_TYPES) == set(_HANDLERS)
    assert all(len(row) == len(OBS_TYPES) for row in TABLE.values())


@pytest.mark.parametrize(
    ("state", "obs_type", "expected"),
    [
        pytest.param(state, obs_type, TABLE[state][i], id=f"{state.value}-{obs_type.name}")
        for state in JobState
        for i, obs_type in enumerate(OBS_TYPES)
    ],
)
def test_every_state_and_observation(
    state: JobState, obs_type: type[Observation], expected: JobState | None
) -> None:
    job = job_in(state)
    transition = decide(job, SAMPLES[obs_type], NOW, POLICY)
    assert (transition.to_state if transition else None) == expected
    if transition is not None:
        assert is_allowed(state, transition.to_state)
        after = transition.apply(job, NOW)
        assert after.state == expected
        assert after.updated_at == NOW


# --- table 2: upstream reports x delivery x state --------------------------------------------

REPORTS: dict[str, UpstreamReport] = {
    "PENDING": report(U.PENDING),
    "TEXT": report(U.TEXT_SUCCESS),
    "FIRST": report(U.FIRST_SUCCESS),
    "SUCCESS": report(U.SUCCESS),
    "SUCCESS_NO_URLS": report(U.SUCCESS, urls=False),
    "FAILED": report(U.FAILED),
}
Deliver = Callable[[UpstreamReport], Observation]
DELIVERIES: dict[str, Deliver] = {
    "poll": Polled,
    "verify": lambda r: CallbackReceived(r, trusted=False),
    "trust": lambda r: CallbackReceived(r, trusted=True),
}
# columns, in the order of REPORTS: PENDING TEXT FIRST SUCCESS SUCCESS_NO_URLS FAILED
REPORT_TABLE: dict[tuple[JobState, str], tuple[JobState | None, ...]] = {
    # pending, PENDING confirmed
    (S.PENDING, "poll"): (S.PENDING, S.RUNNING, S.RUNNING, S.SUCCEEDED, S.RUNNING, S.FAILED),
    (S.PENDING, "verify"): (NO, S.PENDING, S.PENDING, S.PENDING, S.PENDING, S.PENDING),
    # trust: a claim no higher than the confirmed status is a duplicate (does not delay polls)
    (S.PENDING, "trust"): (NO, S.RUNNING, S.RUNNING, S.SUCCEEDED, S.RUNNING, S.FAILED),
    # running, TEXT_SUCCESS confirmed: a PENDING report is stale
    (S.RUNNING, "poll"): (S.RUNNING, S.RUNNING, S.RUNNING, S.SUCCEEDED, S.RUNNING, S.FAILED),
    (S.RUNNING, "verify"): (NO, NO, S.RUNNING, S.RUNNING, S.RUNNING, S.RUNNING),
    (S.RUNNING, "trust"): (NO, NO, S.RUNNING, S.SUCCEEDED, S.RUNNING, S.FAILED),
    # succeeded, same URLs: everything is a duplicate, a regression, or cannot undo success
    (S.SUCCEEDED, "poll"): (NO, NO, NO, NO, NO, NO),
    (S.SUCCEEDED, "verify"): (NO, NO, NO, NO, NO, NO),
    (S.SUCCEEDED, "trust"): (NO, NO, NO, NO, NO, NO),
    # timed_out, TEXT_SUCCESS confirmed: late polls continue; late success wins; late failure
    # keeps timed_out
    (S.TIMED_OUT, "poll"): (
        S.TIMED_OUT, S.TIMED_OUT, S.TIMED_OUT, S.SUCCEEDED, S.TIMED_OUT, S.TIMED_OUT,
    ),
    (S.TIMED_OUT, "verify"): (NO, NO, S.TIMED_OUT, S.TIMED_OUT, S.TIMED_OUT, S.TIMED_OUT),
    (S.TIMED_OUT, "trust"): (NO, NO, S.TIMED_OUT, S.SUCCEEDED, S.TIMED_OUT, S.TIMED_OUT),
}  # fmt: skip


@pytest.mark.parametrize(
    ("state", "delivery", "status", "expected"),
    [
        pytest.param(state, delivery, status, row[i], id=f"{state.value}-{delivery}-{status}")
        for (state, delivery), row in REPORT_TABLE.items()
        for i, status in enumerate(REPORTS)
    ],
)
def test_reports_by_state_and_delivery(
    state: JobState, delivery: str, status: str, expected: JobState | None
) -> None:
    job = job_in(state)
    transition = decide(job, DELIVERIES[delivery](REPORTS[status]), NOW, POLICY)
    assert (transition.to_state if transition else None) == expected
    if transition is None:
        return
    assert is_allowed(state, transition.to_state)
    assert RANK[transition.to_state] >= RANK[state]
    if delivery == "verify":
        # a verify-mode callback never changes state or result: a terminal claim says "look
        # now"; a progress claim moves the next poll out to the safety-net interval
        assert transition.to_state == state
        allowed = {"hint", "hint_polls", "next_poll_at", "poll_note", "timeline"}
        assert set(transition.changes) <= allowed
        terminal = REPORTS[status].status in (U.SUCCESS, U.FAILED)
        if terminal:
            assert transition.changes["next_poll_at"] == NOW
            assert transition.wake_poller
        else:
            safety = NOW + timedelta(seconds=POLICY.poll_interval_s * POLICY.callback_poll_factor)
            assert transition.changes["next_poll_at"] >= safety
            assert not transition.wake_poller


def test_progress_callbacks_cannot_push_polling_out_repeatedly() -> None:
    """Only a claim beyond what is known moves the poll: duplicates change nothing."""
    job = fold(job_in(S.PENDING), CallbackReceived(report(U.TEXT_SUCCESS)))
    assert decide(job, CallbackReceived(report(U.TEXT_SUCCESS)), NOW, POLICY) is None
    job = fold(job, CallbackReceived(report(U.FIRST_SUCCESS)))
    assert decide(job, CallbackReceived(report(U.FIRST_SUCCESS)), NOW, POLICY) is None
    limit = NOW + timedelta(seconds=POLICY.poll_interval_s * POLICY.callback_poll_factor)
    assert job.next_poll_at is not None and job.next_poll_at <= limit
    terminal = check(job, CallbackReceived(report(U.SUCCESS)))
    assert terminal.wake_poller and terminal.changes["next_poll_at"] == NOW


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("delivery", list(DELIVERIES))
@pytest.mark.parametrize("status", list(REPORTS))
def test_terminal_states_ignore_every_upstream_report(
    state: JobState, delivery: str, status: str
) -> None:
    job = job_in(state, task_id=TASK)
    assert decide(job, DELIVERIES[delivery](REPORTS[status]), NOW, POLICY) is None
    assert decide(job, PollFailed("timeout"), NOW, POLICY) is None


def test_a_report_for_another_task_is_ignored() -> None:
    other = replace(report(U.SUCCESS), task_id="someone-else")
    for state in (S.PENDING, S.RUNNING, S.TIMED_OUT):
        for deliver in DELIVERIES.values():
            assert decide(job_in(state), deliver(other), NOW, POLICY) is None


# --- submit ----------------------------------------------------------------------------------


def test_submit_started_counts_the_attempt_and_records_the_token() -> None:
    job = job_in(S.QUEUED, submit_attempts=2, not_before=NOW)
    transition = check(job, SubmitStarted(token_hash="sha256:abc"))
    assert transition.to_state == S.SUBMITTING
    assert transition.token_hash == "sha256:abc"
    after = transition.apply(job, NOW)
    assert after.submit_attempts == 3
    assert after.not_before is None
    assert after.state_since == NOW


def test_submit_accepted_schedules_the_first_poll_and_the_deadline() -> None:
    transition = check(job_in(S.SUBMITTING), SubmitAccepted(TASK))
    assert transition.to_state == S.PENDING
    assert not transition.wake_poller
    job = transition.apply(job_in(S.SUBMITTING), NOW)
    assert job.task_id == TASK
    assert job.deadline_at == NOW + timedelta(seconds=POLICY.deadline_s)
    assert job.next_poll_at is not None
    delay = (job.next_poll_at - NOW).total_seconds()
    spread = POLICY.poll_interval_s * POLICY.poll_jitter
    assert POLICY.poll_interval_s - spread <= delay <= POLICY.poll_interval_s + spread


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (6, 64.0), (7, 128.0)]
)
def test_retryable_submit_error_backs_off(attempt: int, delay: float) -> None:
    job = job_in(S.SUBMITTING, submit_attempts=attempt)
    transition = check(job, SubmitFailed(retryable=True, message="busy", code=503))
    assert transition.to_state == S.QUEUED
    assert transition.changes["not_before"] == NOW + timedelta(seconds=delay)
    assert transition.changes["error"] == JobError("submit", 503, "busy")


def test_submit_backoff_is_capped() -> None:
    policy = Policy(submit_max_attempts=20, backoff_jitter=0.0)
    job = job_in(S.SUBMITTING, submit_attempts=12)
    transition = check(job, SubmitFailed(retryable=True, message="busy"), policy=policy)
    assert transition.changes["not_before"] == NOW + timedelta(seconds=300)


def test_retry_after_wins_when_longer_than_the_backoff() -> None:
    job = job_in(S.SUBMITTING, submit_attempts=1)
    longer = check(job, SubmitFailed(retryable=True, message="429", code=429, retry_after=45.0))
    assert longer.changes["not_before"] == NOW + timedelta(seconds=45)
    shorter = check(job, SubmitFailed(retryable=True, message="429", code=429, retry_after=0.5))
    assert shorter.changes["not_before"] == NOW + timedelta(seconds=2)


def test_final_submit_error_fails_at_stage_submit() -> None:
    job = fold(job_in(S.SUBMITTING), SubmitFailed(retryable=False, message="no credits", code=429))
    assert job.state == S.FAILED
    assert job.error == JobError("submit", 429, "no credits")
    assert job.finished_at == NOW
    assert job.next_poll_at is None


def test_retryable_submit_errors_fail_once_attempts_are_exhausted() -> None:
    job = job_in(S.QUEUED)
    now = NOW
    for attempt in range(1, POLICY.submit_max_attempts + 1):
        job = fold(job, SubmitStarted(token_hash=f"t{attempt}"), now)
        assert job.submit_attempts == attempt
        job = fold(job, SubmitFailed(retryable=True, message="busy", code=503), now)
        if attempt < POLICY.submit_max_attempts:
            assert job.state == S.QUEUED
            assert job.not_before is not None
            now = job.not_before
    assert job.state == S.FAILED
    assert job.error is not None and job.error.stage == "submit"


@pytest.mark.parametrize("obs", [SubmitUnknown("read timeout"), SubmitLeaseExpired()])
def test_unknown_submit_outcome_is_uncertain_never_resubmitted(obs: Observation) -> None:
    job = fold(job_in(S.SUBMITTING), obs)
    assert job.state == S.UNCERTAIN
    assert job.error is not None and job.error.stage == "submit"
    assert job.not_before is None


# --- uncertain -------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
def test_a_callback_with_a_task_id_resolves_uncertain(trusted: bool) -> None:
    transition = check(job_in(S.UNCERTAIN), CallbackReceived(report(U.TEXT_SUCCESS), trusted))
    assert transition.to_state == S.PENDING
    assert transition.wake_poller
    job = transition.apply(job_in(S.UNCERTAIN), NOW)
    assert job.task_id == TASK
    assert job.next_poll_at == NOW
    assert job.error is None


def test_a_callback_without_a_task_id_leaves_uncertain_alone() -> None:
    anonymous = replace(report(U.TEXT_SUCCESS), task_id=None)
    assert decide(job_in(S.UNCERTAIN), CallbackReceived(anonymous), NOW, POLICY) is None


def test_operator_resolves_uncertain() -> None:
    job = job_in(S.UNCERTAIN)
    by_id = fold(job, ResolveRequested(Resolution.TASK_ID, task_id="task-given"))
    assert (by_id.state, by_id.task_id, by_id.next_poll_at) == (S.PENDING, "task-given", NOW)
    assert fold(job, ResolveRequested(Resolution.RESUBMIT)).state == S.QUEUED
    failed = fold(job, ResolveRequested(Resolution.FAIL))
    assert failed.state == S.FAILED
    assert failed.error is not None and failed.error.stage == "operator"
    assert decide(job, ResolveRequested(Resolution.TASK_ID), NOW, POLICY) is None
    # only an uncertain job is resolved
    assert decide(job_in(S.PENDING), ResolveRequested(Resolution.FAIL), NOW, POLICY) is None


@pytest.mark.parametrize(
    ("uncertain_policy", "expected"),
    [("hold", None), ("resubmit", S.QUEUED), ("fail", S.FAILED)],
)
def test_uncertain_grace_applies_the_policy(
    uncertain_policy: str, expected: JobState | None
) -> None:
    policy = Policy(uncertain_policy=uncertain_policy)
    transition = decide(job_in(S.UNCERTAIN), UncertainGraceOver(), NOW, policy)
    assert (transition.to_state if transition else None) == expected
    if transition is not None and expected == S.FAILED:
        assert transition.changes["error"].stage == "submit"


# --- polling ---------------------------------------------------------------------------------


def test_jitter_factor_stays_within_the_spread_and_is_deterministic() -> None:
    factors = [jitter_factor(f"job-{i}", n, 0.1) for i in range(50) for n in range(10)]
    assert all(0.9 <= f <= 1.1 for f in factors)
    assert factors == [jitter_factor(f"job-{i}", n, 0.1) for i in range(50) for n in range(10)]
    assert len(set(factors)) > 400  # jobs do not poll in lockstep
    assert min(factors) < 0.95 < 1.05 < max(factors)
    assert jitter_factor("job-1", 3, 0.0) == 1.0


def test_next_poll_is_jittered_within_bounds_and_replays_exactly() -> None:
    delays = set()
    for polls in range(40):
        job = job_in(S.RUNNING, polls=polls)
        transition = check(job, Polled(report(U.TEXT_SUCCESS)))
        again = check(job, Polled(report(U.TEXT_SUCCESS)))
        assert transition.changes["next_poll_at"] == again.changes["next_poll_at"]
        delay = (transition.changes["next_poll_at"] - NOW).total_seconds()
        assert 27.0 <= delay <= 33.0
        assert delay == pytest.approx(30.0 * jitter_factor("song-1", polls, 0.1))
        delays.add(delay)
    assert len(delays) > 30


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 5.0, 60.0) for n in range(0, 7)] == [5, 5, 10, 20, 40, 60, 60]


def test_poll_failures_back_off_honour_retry_after_and_reset_on_success() -> None:
    job = job_in(S.RUNNING)
    delays = []
    for _ in range(9):
        job = fold(job, PollFailed("503", code=503))
        assert job.next_poll_at is not None
        delays.append((job.next_poll_at - NOW).total_seconds())
    assert delays == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert job.poll_failures == 9
    limited = check(job_in(S.RUNNING), PollFailed("429", code=429, retry_after=90.0))
    assert limited.changes["next_poll_at"] == NOW + timedelta(seconds=90)
    job = fold(job, Polled(report(U.TEXT_SUCCESS)))
    assert job.poll_failures == 0
    # a job that is not being polled has nothing to back off
    assert decide(job_in(S.RUNNING, next_poll_at=None), PollFailed("x"), NOW, POLICY) is None


def test_progress_never_regresses() -> None:
    running = job_in(
        S.RUNNING, upstream_status="FIRST_SUCCESS", result=report(U.FIRST_SUCCESS).result_json()
    )
    for stale in (U.PENDING, U.TEXT_SUCCESS):
        for deliver in (Polled, lambda r: CallbackReceived(r, trusted=True)):
            transition = decide(running, deliver(report(stale)), NOW, POLICY)
            if transition is None:
                continue
            after = transition.apply(running, NOW)
            assert after.state == S.RUNNING
            assert after.upstream_status == "FIRST_SUCCESS"
            assert after.result == running.result


def test_success_without_the_needed_urls_is_progress() -> None:
    job = fold(job_in(S.PENDING), Polled(report(U.SUCCESS, urls=False)))
    assert job.state == S.RUNNING
    assert job.upstream_status == "SUCCESS"
    assert job.artifacts == ()
    assert job.next_poll_at is not None  # keeps polling until the URLs appear
    job = fold(job, Polled(report(U.SUCCESS)), NOW + timedelta(seconds=30))
    assert job.state == S.SUCCEEDED
    assert [a.name for a in job.artifacts] == [a.name for a in SUCCESS_ARTIFACTS]


def test_partial_results_are_recorded() -> None:
    job = fold(job_in(S.PENDING), Polled(report(U.FIRST_SUCCESS)))
    assert job.state == S.RUNNING
    assert job.result is not None
    assert job.result["status"] == "FIRST_SUCCESS"
    assert job.result["tracks"][0]["audio_url"] == "https://cdn.example/v1/trk-1.mp3"
    assert job.result["tracks"][1]["audio_url"] is None


def test_success_records_result_and_artifacts_ready_to_download() -> None:
    transition = check(job_in(S.RUNNING, hint="SUCCESS"), Polled(report(U.SUCCESS)))
    job = transition.apply(job_in(S.RUNNING), NOW)
    assert job.state == S.SUCCEEDED
    assert job.result == report(U.SUCCESS).result_json()
    assert len(job.artifacts) == 4
    assert all(a.next_attempt_at == NOW and a.state == ArtifactState.PENDING for a in job.artifacts)
    assert job.next_poll_at is None
    assert job.hint is None


def test_a_later_success_poll_refreshes_urls_of_artifacts_not_yet_stored() -> None:
    first, *rest = job_in(S.SUCCEEDED).artifacts
    job = job_in(S.SUCCEEDED, artifacts=(stored(first), *rest), next_poll_at=NOW)
    job = fold(job, Polled(report(U.SUCCESS, url_rev=2)))
    assert job.artifacts[0] == stored(first)  # stored: untouched
    for artifact in job.artifacts[1:]:
        assert "/v2/" in artifact.url
        assert artifact.next_attempt_at == NOW
    assert job.next_poll_at is None
    assert decide(job, Polled(report(U.SUCCESS, url_rev=2)), NOW, POLICY) is None


def test_succeeded_is_never_failed_by_a_later_failure_report() -> None:
    job = job_in(S.SUCCEEDED, next_poll_at=NOW)
    for name in ("verify", "trust"):
        assert decide(job, DELIVERIES[name](report(U.FAILED)), NOW, POLICY) is None
    # the poll is ignored too, but it moves the next poll out (no hot loop)
    transition = check(job, Polled(report(U.FAILED)))
    assert transition.to_state == S.SUCCEEDED
    assert set(transition.changes) == {"next_poll_at", "poll_failures"}
    assert transition.changes["next_poll_at"] > NOW


# --- callbacks -------------------------------------------------------------------------------


def test_verify_callback_claiming_more_wakes_a_poll_and_changes_nothing_else() -> None:
    job = job_in(S.RUNNING)
    transition = check(job, CallbackReceived(report(U.SUCCESS)))
    assert transition.wake_poller
    after = transition.apply(job, NOW)
    assert (after.state, after.result, after.upstream_status) == (
        job.state,
        job.result,
        job.upstream_status,
    )
    assert after.artifacts == ()
    assert (after.hint, after.hint_polls, after.next_poll_at) == ("SUCCESS", 0, NOW)
    # the same claim again, or a lower one: nothing
    for status in (U.SUCCESS, U.FAILED, U.FIRST_SUCCESS, U.TEXT_SUCCESS, U.PENDING):
        assert decide(after, CallbackReceived(report(status)), NOW, POLICY) is None


def poll_times_after_forged_callback(confirm_with: UpstreamStatus, polls: int = 5) -> list[float]:
    """Seconds after the callback at which polls happen, for the first ``polls`` polls."""
    job = fold(job_in(S.RUNNING), CallbackReceived(report(U.SUCCESS)))
    times = []
    for _ in range(polls):
        assert job.next_poll_at is not None
        at = job.next_poll_at
        times.append((at - NOW).total_seconds())
        job = replace(fold(job, Polled(report(confirm_with)), at), polls=job.polls + 1)
    return times


def test_an_unconfirmed_terminal_hint_gets_growing_confirmation_polls_then_the_normal_pace() -> (
    None
):
    knobs = POLICY.adaptive
    times = poll_times_after_forged_callback(U.TEXT_SUCCESS, polls=40)
    assert times[0] == 0.0  # the wake-up poll
    assert times[1] == POLICY.confirm_delay_s  # record-info may lag: look again soon
    gaps = [b - a for a, b in itertools.pairwise(times)]
    confirming = [g for g in gaps[1:] if g <= knobs.confirm_max_gap_s]
    assert confirming == sorted(confirming)  # growing ...
    assert max(confirming) == knobs.confirm_max_gap_s  # ... up to the cap
    # for the confirmation window, then (the claim unconfirmed) back to the normal pace
    end = times[len(confirming) + 1]
    assert knobs.confirm_window_s <= end <= knobs.confirm_window_s + 2 * knobs.confirm_max_gap_s
    assert all(27.0 <= gap <= 33.0 for gap in gaps[len(confirming) + 1 :])


def test_a_confirmed_hint_is_cleared() -> None:
    job = fold(job_in(S.RUNNING), CallbackReceived(report(U.FIRST_SUCCESS)))
    job = fold(job, Polled(report(U.FIRST_SUCCESS)))
    assert (job.hint, job.hint_polls, job.upstream_status) == (None, 0, "FIRST_SUCCESS")
    assert job.next_poll_at is not None
    assert (job.next_poll_at - NOW).total_seconds() >= 27.0


def test_trust_mode_applies_the_callback_and_keeps_polling() -> None:
    job = fold(job_in(S.PENDING), CallbackReceived(report(U.TEXT_SUCCESS), trusted=True))
    assert job.state == S.RUNNING
    assert job.upstream_status == "TEXT_SUCCESS"
    assert job.next_poll_at is not None and job.next_poll_at > NOW
    succeeded = fold(job, CallbackReceived(report(U.SUCCESS), trusted=True))
    assert succeeded.state == S.SUCCEEDED
    assert len(succeeded.artifacts) == 4
    failed = fold(job, CallbackReceived(report(U.FAILED), trusted=True))
    assert failed.state == S.FAILED
    assert failed.error is not None and failed.error.stage == "upstream"


@pytest.mark.parametrize("trusted", [False, True])
def test_early_callback_records_a_hint_and_accept_polls_at_once(trusted: bool) -> None:
    job = fold(job_in(S.SUBMITTING), CallbackReceived(report(U.SUCCESS), trusted=trusted))
    # the taskId is kept: the token proves this attempt was accepted
    assert (job.state, job.hint, job.task_id, job.result) == (S.SUBMITTING, "SUCCESS", TASK, None)
    assert decide(job, CallbackReceived(report(U.SUCCESS), trusted), NOW, POLICY) is None
    assert decide(job, CallbackReceived(report(U.TEXT_SUCCESS), trusted), NOW, POLICY) is None
    transition = check(job, SubmitAccepted(TASK))
    assert transition.wake_poller
    job = transition.apply(job, NOW)
    assert (job.state, job.task_id, job.next_poll_at) == (S.PENDING, TASK, NOW)


@pytest.mark.parametrize("lost", [SubmitUnknown("read timeout"), SubmitLeaseExpired()])
def test_early_callback_then_lost_answer_is_pending_not_uncertain(lost: Observation) -> None:
    """The early callback proved acceptance: never leave the job uncertain (pay-twice risk)."""
    job = fold(job_in(S.SUBMITTING), CallbackReceived(report(U.TEXT_SUCCESS)))
    transition = check(job, lost)
    assert transition.to_state == S.PENDING and transition.wake_poller
    job = transition.apply(job, NOW)
    assert (job.task_id, job.next_poll_at) == (TASK, NOW)


def test_callbacks_before_submit_are_ignored() -> None:
    assert decide(job_in(S.QUEUED), CallbackReceived(report(U.SUCCESS)), NOW, POLICY) is None


# --- downloads -------------------------------------------------------------------------------


def test_storing_every_artifact_completes_the_job() -> None:
    job = job_in(S.SUCCEEDED)
    for i, artifact in enumerate(SUCCESS_ARTIFACTS):
        obs = ArtifactStored(artifact.name, f"/var/a/{artifact.name}", 100 + i, "f" * 64)
        job = fold(job, obs)
        assert decide(job, obs, NOW, POLICY) is None  # stored twice: nothing
        last = i == len(SUCCESS_ARTIFACTS) - 1
        assert job.state == (S.COMPLETED if last else S.SUCCEEDED)
    assert job.finished_at == NOW
    assert all(a.state == ArtifactState.STORED and a.bytes for a in job.artifacts)
    unknown = ArtifactStored("nope.mp3", "/x", 1, "0")
    assert decide(job_in(S.SUCCEEDED), unknown, NOW, POLICY) is None


def test_transient_download_failures_back_off_then_fail_the_download_stage() -> None:
    job = job_in(S.SUCCEEDED)
    delays = []
    obs = DownloadFailed(FIRST_ARTIFACT, DownloadFailure.TRANSIENT, "connection reset")
    for _ in range(POLICY.download_max_attempts - 1):
        job = fold(job, obs)
        artifact = job.artifact(FIRST_ARTIFACT)
        assert job.state == S.SUCCEEDED and artifact is not None
        assert artifact.next_attempt_at is not None
        delays.append((artifact.next_attempt_at - NOW).total_seconds())
    assert delays == [2, 4, 8, 16, 32]
    job = fold(job, obs)
    assert job.state == S.FAILED
    assert job.error is not None
    assert (job.error.stage, job.error.code) == ("download", "transient")


def test_expired_url_waits_for_a_fresh_url_poll() -> None:
    job = job_in(S.SUCCEEDED)
    transition = check(job, DownloadFailed(FIRST_ARTIFACT, DownloadFailure.EXPIRED, "403"))
    assert transition.wake_poller
    job = transition.apply(job, NOW)
    artifact = job.artifact(FIRST_ARTIFACT)
    assert artifact is not None and artifact.next_attempt_at is None and artifact.attempts == 1
    assert job.next_poll_at == NOW
    later = NOW + timedelta(seconds=3)
    job = fold(job, Polled(report(U.SUCCESS, url_rev=2)), later)
    artifact = job.artifact(FIRST_ARTIFACT)
    assert artifact is not None and "/v2/" in artifact.url and artifact.next_attempt_at == later
    assert job.next_poll_at is None


def test_refused_download_fails_at_once() -> None:
    job = fold(job_in(S.SUCCEEDED), DownloadFailed(FIRST_ARTIFACT, DownloadFailure.REFUSED, "ssrf"))
    assert job.state == S.FAILED
    assert job.error is not None and job.error.stage == "download"


# --- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PENDING, S.RUNNING])
def test_deadline_times_out_only_once_it_has_passed(state: JobState) -> None:
    job = job_in(state)
    assert job.deadline_at is not None
    assert decide(job, DeadlinePassed(), job.deadline_at - timedelta(seconds=1), POLICY) is None
    timed_out = fold(job, DeadlinePassed(), job.deadline_at)
    assert timed_out.state == S.TIMED_OUT
    assert timed_out.error is not None and timed_out.error.stage == "deadline"
    assert timed_out.next_poll_at == job.deadline_at + timedelta(seconds=300)


def test_timed_out_keeps_polling_late_then_stops() -> None:
    job = job_in(S.TIMED_OUT)
    late = fold(job, Polled(report(U.TEXT_SUCCESS)))
    assert late.state == S.TIMED_OUT
    assert late.next_poll_at == NOW + timedelta(seconds=POLICY.late_poll_interval_s)
    assert job.deadline_at is not None
    after_window = job.deadline_at + timedelta(seconds=POLICY.late_window_s + 1)
    assert fold(job, Polled(report(U.TEXT_SUCCESS)), after_window).next_poll_at is None


def test_a_late_success_is_accepted() -> None:
    job = fold(job_in(S.TIMED_OUT), Polled(report(U.SUCCESS)))
    assert job.state == S.SUCCEEDED
    assert job.error is None and job.finished_at is None
    assert len(job.artifacts) == 4


def test_a_late_failure_keeps_timed_out_and_stops_polling() -> None:
    job = fold(job_in(S.TIMED_OUT), Polled(report(U.FAILED)))
    assert job.state == S.TIMED_OUT
    assert job.next_poll_at is None
    assert job.error is not None and job.error.stage == "deadline"


# --- operator --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [s for s in JobState if s not in TERMINAL])
def test_cancel_from_any_non_terminal_state(state: JobState) -> None:
    job = fold(job_in(state), CancelRequested())
    assert job.state == S.CANCELLED
    assert (job.finished_at, job.next_poll_at, job.not_before) == (NOW, None, None)


@pytest.mark.parametrize("state", [S.FAILED, S.CANCELLED, S.TIMED_OUT])
def test_retry_is_a_fresh_attempt(state: JobState) -> None:
    job = job_in(state, submit_attempts=POLICY.submit_max_attempts, hint="SUCCESS")
    job = fold(job, RetryRequested())
    assert job.state == S.QUEUED
    assert job.task_id is None and job.result is None and job.artifacts == ()
    assert job.error is None and job.finished_at is None and job.next_poll_at is None
    assert job.hint is None and job.upstream_status is None
    assert job.submit_attempts == 0  # a full submit budget again
    job = fold(job, SubmitStarted(token_hash="t"))
    assert fold(job, SubmitFailed(retryable=True, message="busy")).state == S.QUEUED


def test_retry_after_a_download_failure_downloads_again_never_resubmits() -> None:
    first, *rest = job_in(S.SUCCEEDED).artifacts
    failed_artifact = replace(rest[0], attempts=6, last_error="reset")
    job = job_in(
        S.FAILED,
        upstream_status="SUCCESS",
        result=report(U.SUCCESS).result_json(),
        artifacts=(stored(first), failed_artifact, *rest[1:]),
        error=JobError("download", "transient", "reset"),
    )
    transition = check(job, RetryRequested())
    assert transition.to_state == S.SUCCEEDED
    assert transition.wake_poller
    job = transition.apply(job, NOW)
    assert (job.task_id, job.submit_attempts, job.result) == (
        TASK,
        1,
        report(U.SUCCESS).result_json(),
    )
    assert job.artifacts[0] == stored(first)
    assert all(a.attempts == 0 and a.next_attempt_at is None for a in job.artifacts[1:])
    assert job.next_poll_at == NOW  # a poll brings fresh URLs, then the downloads restart
    job = fold(job, Polled(report(U.SUCCESS, url_rev=2)))
    assert all(a.next_attempt_at == NOW for a in job.artifacts[1:])


def test_accepted_after_cancel_only_records_the_task_id() -> None:
    transition = check(job_in(S.CANCELLED), SubmitAccepted(TASK))
    assert transition.to_state == S.CANCELLED
    assert transition.changes == {"task_id": TASK}
    assert decide(job_in(S.CANCELLED, task_id=TASK), SubmitAccepted(TASK), NOW, POLICY) is None


# --- Transition.apply ------------------------------------------------------------------------


def test_apply_moves_state_since_only_on_a_change_of_state() -> None:
    job = job_in(S.RUNNING)
    same = fold(job, Polled(report(U.TEXT_SUCCESS)))
    assert same.state_since == T0 and same.updated_at == NOW
    moved = fold(job, Polled(report(U.SUCCESS)))
    assert moved.state_since == NOW


# --- a retry whose proof another process waited for ------------------------------------------


def test_an_answer_that_may_hide_a_task_names_the_process_that_waits_for_its_proof() -> None:
    failed = SubmitFailed(True, "HTTP 500", 500, attempt=1, watcher="node-a")
    t = decide(job_in(S.SUBMITTING, submit_attempts=1, attempt=1), failed, NOW, POLICY)
    assert t is not None and t.to_state == S.QUEUED
    assert t.changes["error"] == JobError("submit", 500, "HTTP 500", "node-a")
    assert JobError("submit", 500, "HTTP 500", "node-a").to_json()["watcher"] == "node-a"
    assert "watcher" not in JobError("submit", 500, "HTTP 500").to_json()


@pytest.mark.parametrize(
    ("watcher", "by", "to"),
    [
        ("node-a", "node-a", S.SUBMITTING),  # the process that waited sends its retry
        ("node-a", "node-b", S.UNCERTAIN),  # it stopped: its proof may be lost with it
        (None, "node-b", S.SUBMITTING),  # nothing created for sure (refused, not answered)
        ("node-a", None, S.SUBMITTING),  # a caller that names no process (tests, tools)
    ],
)
def test_only_the_waiting_process_may_send_the_retry(
    watcher: str | None, by: str | None, to: JobState
) -> None:
    waiting = job_in(
        S.QUEUED,
        submit_attempts=1,
        attempt=1,
        error=JobError("submit", 500, "HTTP 500", watcher),
        not_before=NOW,
    )
    t = decide(waiting, SubmitStarted(token_hash="h", by=by), NOW, POLICY)
    assert t is not None and t.to_state == to
    if to == S.UNCERTAIN:
        assert t.changes["error"].stage == "submit" and "node-a" in t.changes["error"].message
        assert is_allowed(S.QUEUED, S.UNCERTAIN)
    # a fresh job (no attempt sent yet) is never refused, whoever sends it
    fresh = job_in(S.QUEUED, error=JobError("submit", 500, "old", watcher))
    assert decide(fresh, SubmitStarted(token_hash="h", by=by), NOW, POLICY).to_state in (
        S.SUBMITTING,
    )
