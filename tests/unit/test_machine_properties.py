"""Properties of the state machine, checked with hypothesis.

1. Convergence: the order and multiplicity in which upstream observations arrive do not
   change where a job ends up (see :func:`test_reordered_and_duplicated_reports_converge`).
2. Safety: no sequence of observations of any kind takes a forbidden edge; no poll or
   callback lowers a job's RANK or its confirmed upstream status; terminal states absorb
   every poll and callback.

All times are fixed offsets from one constant; nothing reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.domain import Artifact, ArtifactState, Job, JobError
from orchestrator.kinds import artifacts_for
from orchestrator.machine import Policy, decide
from orchestrator.observations import (
    STATUS_RANK,
    ArtifactStored,
    CallbackReceived,
    CancelRequested,
    DeadlinePassed,
    DownloadFailed,
    DownloadFailure,
    Observation,
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

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
TASK = "task-7f3a"
STEP = timedelta(seconds=7)  #: between two observations (well inside the 1800 s deadline)

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- upstream reports ------------------------------------------------------------------------


def report(status: UpstreamStatus, *, urls: bool = True) -> UpstreamReport:
    """What the upstream says at each stage of a two-track generation (fixed URLs)."""

    def track(n: int, audio: bool) -> Track:
        return Track(
            id=f"trk-{n}",
            audio_url=f"https://cdn.example/trk-{n}.mp3" if audio else None,
            stream_url=f"https://cdn.example/stream/trk-{n}",
            image_url=f"https://cdn.example/trk-{n}.jpeg" if audio else None,
        )

    if status == U.PENDING:
        return UpstreamReport(status, TASK)
    if status == U.FAILED:
        return UpstreamReport(status, TASK, error_code=501, error_message="generation failed")
    tracks = {
        U.TEXT_SUCCESS: (track(1, False), track(2, False)),
        U.FIRST_SUCCESS: (track(1, True), track(2, False)),
        U.SUCCESS: (track(1, urls), track(2, urls)),
    }[status]
    return UpstreamReport(status, TASK, tracks=tracks, raw_status=status.value)


SUCCESS_NO_URLS = report(U.SUCCESS, urls=False)  #: record-info lag: SUCCESS, URLs not yet in


def _success_artifacts() -> tuple[Artifact, ...]:
    artifacts = artifacts_for("generate_music", report(U.SUCCESS))
    assert artifacts is not None
    return artifacts


ARTIFACTS = _success_artifacts()


def deliver(rep: UpstreamReport, channel: str) -> Observation:
    if channel == "poll":
        return Polled(rep)
    return CallbackReceived(rep, trusted=channel == "trust")


def new_job(state: JobState = S.SUBMITTING, **fields: Any) -> Job:
    return Job(
        id=1,
        key="song-1",
        kind="generate_music",
        provider="sunoapi",
        state=state,
        params={"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "piano"},
        created_at=T0,
        updated_at=T0,
        **fields,
    )


def fold(job: Job, observations: list[Observation], start: datetime) -> Job:
    now = start
    for obs in observations:
        now += STEP
        transition = decide(job, obs, now)
        if transition is not None:
            job = transition.apply(job, now)
    return job


def outcome(job: Job) -> tuple[Any, ...]:
    """What must not depend on arrival order at all."""
    return (
        job.state,
        job.task_id,
        job.upstream_status,
        job.error.stage if job.error else None,
        tuple((a.name, a.url) for a in job.artifacts),
    )


def result_status(job: Job) -> str | None:
    return job.result["status"] if job.result else None


def _is_failure(obs: Observation) -> bool:
    return isinstance(obs, (Polled, CallbackReceived)) and obs.report.status == U.FAILED


def failure_last(arrived: list[Observation]) -> list[Observation]:
    """The same arrivals, with every FAILED report moved (in order) behind all others."""
    return [o for o in arrived if not _is_failure(o)] + [o for o in arrived if _is_failure(o)]


# --- 1. convergence --------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """One upstream history and how its reports reached us."""

    early: Observation | None  #: a callback that arrived while the job was still submitting
    upstream: list[Observation]  #: in the order the upstream produced them


@st.composite
def histories(draw: st.DrawFn) -> History:
    progress = draw(
        st.lists(st.sampled_from([U.PENDING, U.TEXT_SUCCESS, U.FIRST_SUCCESS]), max_size=5)
    )
    progress.sort(key=STATUS_RANK.__getitem__)  # monotone, repeats allowed
    reports = [report(s) for s in progress]
    ending = draw(st.sampled_from(["success", "failed", "none"]))
    if ending == "success":
        if draw(st.booleans()):
            reports.append(SUCCESS_NO_URLS)
        reports.append(report(U.SUCCESS))
    elif ending == "failed":
        reports.append(report(U.FAILED))
    if not reports:
        reports.append(report(U.PENDING))
    channels = st.lists(
        st.sampled_from(["poll", "verify", "trust"]), min_size=1, max_size=3, unique=True
    )
    upstream = [deliver(rep, ch) for rep in reports for ch in draw(channels)]
    # the poller keeps polling until it sees the last state: the history ends with that poll
    upstream.append(Polled(reports[-1]))
    early = None
    if draw(st.booleans()):
        early = CallbackReceived(draw(st.sampled_from(reports)), trusted=draw(st.booleans()))
    return History(early, upstream)


def accepted_job(history: History) -> Job:
    """The job right after its submit was accepted (with the early callback's hint, if any)."""
    prefix: list[Observation] = [SubmitAccepted(TASK)]
    if history.early is not None:
        prefix.insert(0, history.early)
    job = fold(new_job(S.SUBMITTING, submit_attempts=1), prefix, T0)
    assert job.state == S.PENDING and job.task_id == TASK
    return job


@CI
@given(history=histories(), data=st.data())
def test_reordered_and_duplicated_reports_converge(history: History, data: st.DataObject) -> None:
    """Any reordering and duplication of a job's upstream observations ends where the
    ordered delivery ends.

    Setup: a submitting job, possibly an early callback (which only leaves a hint), then
    ``submit_accepted``. From that job, the upstream history (a monotone sequence of statuses
    PENDING <= TEXT_SUCCESS <= FIRST_SUCCESS <= SUCCESS, or ending in FAILED, or not finished
    yet; SUCCESS possibly first reported without its URLs), each status delivered as a poll,
    a verify-mode callback and/or a trust-mode callback, closed by the poll of the last
    status, is folded with ``decide`` + ``Transition.apply`` twice: in order, and as an
    arbitrary permutation with arbitrary duplicates inserted anywhere.

    Claim: both folds agree on state, task_id, confirmed upstream_status, error stage, and
    artifact names and URLs, for every order. They also agree on the result's status when
    the order keeps the FAILED reports behind all other reports (the "final authoritative
    report last" condition); without it they may not, and should not: once a job has failed,
    a partial result arriving later is absorbed by the terminal state, so a job that learnt
    of its failure first keeps no partial result. That is the only order-dependent field.

    Why this is the right property: design principle 3 says duplicates, late arrivals and
    reorderings are no-ops by construction. Callbacks may come twice, late, or before the
    submit answer; concurrent polls may return out of order. If the end state depended on
    arrival order, the same upstream outcome could leave one job completed and another stuck.
    The claim holds without pinning the final poll last because each upstream status is a
    fact about a monotone history: authoritative reports (polls, trust-mode callbacks) only
    ever raise the job's progress (a lower one is stale), verify-mode callbacks only schedule
    polls, a terminal report is absorbed by terminal states, and succeeded is never undone by
    a report. So the fold is the maximum of what was reported, whatever the order (the result's
    status aside, as above). Scheduling
    fields (next_poll_at, hint, poll counters) are deliberately not compared: they depend on
    arrival times by design.
    """
    start = accepted_job(history)
    ordered = fold(start, history.upstream, start.updated_at)

    shuffled = data.draw(st.permutations(history.upstream), label="order")
    dupes = data.draw(
        st.lists(
            st.tuples(st.sampled_from(history.upstream), st.integers(0, len(shuffled))),
            max_size=8,
        ),
        label="duplicates",
    )
    arrived = list(shuffled)
    for obs, at in dupes:
        arrived.insert(min(at, len(arrived)), obs)
    assert outcome(fold(start, arrived, start.updated_at)) == outcome(ordered)
    settled = fold(start, failure_last(arrived), start.updated_at)
    assert (outcome(settled), result_status(settled)) == (outcome(ordered), result_status(ordered))

    # and the ordered fold itself is what the history says
    last = history.upstream[-1]
    assert isinstance(last, Polled)
    expected = {U.SUCCESS: S.SUCCEEDED, U.FAILED: S.FAILED}.get(last.report.status)
    if expected is None:
        expected = S.PENDING if last.report.status == U.PENDING else S.RUNNING
        if any(_raises_progress(o) for o in history.upstream):
            expected = S.RUNNING
    assert ordered.state == expected
    assert ordered.upstream_status == last.report.status.value


def _raises_progress(obs: Observation) -> bool:
    authoritative = isinstance(obs, Polled) or (isinstance(obs, CallbackReceived) and obs.trusted)
    report_ = obs.report if isinstance(obs, (Polled, CallbackReceived)) else None
    return authoritative and report_ is not None and report_.status != U.PENDING


# --- 2. safety over arbitrary sequences ------------------------------------------------------


def _stored(a: Artifact) -> Artifact:
    return replace(a, state=ArtifactState.STORED, path=f"/a/{a.name}", bytes=1, sha256="0" * 64)


DEADLINE = T0 + timedelta(seconds=1805)
_TASK_FIELDS: dict[str, Any] = {"task_id": TASK, "submit_attempts": 1, "deadline_at": DEADLINE}
#: one realistic job in each state
STARTS: dict[JobState, Job] = {
    S.QUEUED: new_job(S.QUEUED),
    S.SUBMITTING: new_job(S.SUBMITTING, submit_attempts=1),
    S.UNCERTAIN: new_job(
        S.UNCERTAIN, submit_attempts=1, error=JobError("submit", None, "outcome unknown")
    ),
    S.PENDING: new_job(
        S.PENDING, **_TASK_FIELDS, upstream_status="PENDING", next_poll_at=T0 + STEP
    ),
    S.RUNNING: new_job(
        S.RUNNING,
        **_TASK_FIELDS,
        upstream_status="TEXT_SUCCESS",
        result=report(U.TEXT_SUCCESS).result_json(),
        next_poll_at=T0 + STEP,
    ),
    S.SUCCEEDED: new_job(
        S.SUCCEEDED,
        **_TASK_FIELDS,
        upstream_status="SUCCESS",
        result=report(U.SUCCESS).result_json(),
        artifacts=tuple(replace(a, next_attempt_at=T0) for a in ARTIFACTS),
    ),
    S.COMPLETED: new_job(
        S.COMPLETED,
        **_TASK_FIELDS,
        upstream_status="SUCCESS",
        result=report(U.SUCCESS).result_json(),
        artifacts=tuple(_stored(a) for a in ARTIFACTS),
        finished_at=T0,
    ),
    S.FAILED: new_job(
        S.FAILED,
        **_TASK_FIELDS,
        upstream_status="FAILED",
        error=JobError("upstream", 501, "generation failed"),
        finished_at=T0,
    ),
    S.TIMED_OUT: new_job(
        S.TIMED_OUT,
        **_TASK_FIELDS,
        upstream_status="PENDING",
        error=JobError("deadline", None, "no outcome"),
        finished_at=DEADLINE,
        next_poll_at=DEADLINE + timedelta(seconds=300),
    ),
    S.CANCELLED: new_job(S.CANCELLED, submit_attempts=1, finished_at=T0),
}

_REPORTS = [*(report(s) for s in U), SUCCESS_NO_URLS, replace(report(U.SUCCESS), task_id="other")]
OBSERVATIONS: list[Observation] = [
    SubmitStarted(token_hash="t"),
    SubmitAccepted(TASK),
    SubmitFailed(retryable=True, message="busy", code=503, retry_after=3.0),
    SubmitFailed(retryable=False, message="no credits", code=429),
    SubmitUnknown("timeout"),
    SubmitLeaseExpired(),
    *(deliver(r, ch) for r in _REPORTS for ch in ("poll", "verify", "trust")),
    PollFailed("503", code=503),
    *(
        ArtifactStored(a.name, f"/a/{a.name}", 1, "0" * 64)
        for a in (*ARTIFACTS, replace(ARTIFACTS[0], name="unknown.mp3"))
    ),
    *(DownloadFailed(ARTIFACTS[0].name, reason, "x") for reason in DownloadFailure),
    DownloadFailed(ARTIFACTS[1].name, DownloadFailure.TRANSIENT, "x"),
    DeadlinePassed(),
    UncertainGraceOver(),
    CancelRequested(),
    RetryRequested(),
    *(ResolveRequested(action, task_id=TASK) for action in Resolution),
]
UPSTREAM = (Polled, CallbackReceived)


def _status_rank(value: str | None) -> int:
    return STATUS_RANK[UpstreamStatus(value)] if value else -1


@CI
@given(
    start=st.sampled_from(list(STARTS.values())),
    steps=st.lists(
        st.tuples(st.sampled_from(OBSERVATIONS), st.integers(0, 4000)), min_size=1, max_size=40
    ),
    uncertain_policy=st.sampled_from(["hold", "resubmit", "fail"]),
)
def test_no_sequence_takes_a_forbidden_edge_or_regresses(
    start: Job, steps: list[tuple[Observation, int]], uncertain_policy: str
) -> None:
    """Whatever arrives, in whatever order and at whatever time:

    - ``decide`` returns None or a transition whose edge ``states.is_allowed`` permits (it
      also asserts this itself; here it is checked from outside);
    - a poll or callback never lowers RANK (progress never moves backwards), never lowers the
      confirmed upstream status, and a verify-mode callback changes neither the result nor
      the state (except the documented uncertain -> pending resolution);
    - from a terminal state (completed, failed, cancelled) a poll or callback is ignored, and
      no observation other than the operator's retry leaves the state.
    """
    policy = Policy(uncertain_policy=uncertain_policy)
    job, now = start, T0
    for obs, seconds in steps:
        now += timedelta(seconds=seconds)
        transition = decide(job, obs, now, policy)
        if transition is None:
            continue
        before, job = job, transition.apply(job, now)
        assert is_allowed(before.state, job.state), (before.state, job.state, obs)
        if before.state in TERMINAL:
            assert not isinstance(obs, UPSTREAM), (before.state, obs)
            assert job.state == before.state or isinstance(obs, RetryRequested)
        if isinstance(obs, UPSTREAM):
            assert RANK[job.state] >= RANK[before.state], (before.state, job.state, obs)
            assert _status_rank(job.upstream_status) >= _status_rank(before.upstream_status)
        if isinstance(obs, CallbackReceived) and not obs.trusted:
            assert job.result == before.result
            assert job.upstream_status == before.upstream_status
            # the documented exception: the current attempt's token proves acceptance, from
            # uncertain, or from queued waiting to resend that attempt
            if job.state != before.state:
                assert before.state in (S.UNCERTAIN, S.QUEUED), (before.state, obs)
                assert job.state == S.PENDING and before.submit_attempts > 0


@CI
@given(
    state=st.sampled_from(sorted(TERMINAL)),
    upstream=st.lists(st.sampled_from([o for o in OBSERVATIONS if isinstance(o, UPSTREAM)])),
)
def test_terminal_states_absorb_upstream_observations(
    state: JobState, upstream: list[Observation]
) -> None:
    """completed, failed and cancelled ignore every poll and callback, in any number."""
    job = STARTS[state]
    assert fold(job, upstream, T0) == job
