"""The state machine: one pure function folds an observation into a job.

``decide(job, observation, now, policy)`` returns the :class:`Transition` to apply, or None
when the observation changes nothing (a duplicate, a regression, a late arrival, or an
action the state does not allow). It does no I/O and reads no clock: replaying or
reordering observations is harmless by construction, and the reconciler writes the result
as a compare-and-set together with the event row.

A transition may keep the state (``to_state == job.state``): a rescheduled poll, a partial
result, an artifact stored. Only a change of state is logged as ``job_transitioned``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from orchestrator import schedule
from orchestrator.domain import Artifact, ArtifactState, Job, JobError
from orchestrator.durations import DurationSample, model_of
from orchestrator.kinds import artifacts_for
from orchestrator.observations import (
    STATUS_RANK,
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
    UncertainGraceOver,
    UpstreamReport,
    UpstreamStatus,
)
from orchestrator.pipelines import PARENT_FAILED, expanded
from orchestrator.schedule import Adaptive, Timeline
from orchestrator.states import POLLABLE, TERMINAL, JobState, is_allowed

S = JobState


class UncertainPolicy(StrEnum):
    """What an `uncertain` job becomes once its grace period is over."""

    HOLD = "hold"  #: nothing: the operator decides (`resolve`)
    RESUBMIT = "resubmit"  #: back to `queued`: it may pay twice, by the operator's choice
    FAIL = "fail"  #: `failed`, stage submit


@dataclass(frozen=True)
class Policy:
    """The knobs the machine reads. Built from config; defaults follow the upstream's advice."""

    poll_interval_s: float = 30.0
    #: each poll interval is stretched or shrunk by up to this fraction (deterministic per job)
    poll_jitter: float = 0.1
    deadline_s: float = 1800.0
    poll_backoff_base_s: float = 5.0
    poll_backoff_max_s: float = 600.0
    #: a callback claimed more than the poll it triggered confirmed (record-info lags): poll
    #: once more this soon, then return to the normal interval
    confirm_delay_s: float = 2.0
    #: a progress callback proves callbacks work for a job: its next poll moves out to this
    #: many intervals (a safety net); only a terminal callback triggers an immediate poll
    callback_poll_factor: float = 3.0
    #: every retry backoff (submit, poll, download) is shrunk by a factor in [1 - this, 1],
    #: drawn per job and attempt from a hash, so that jobs which failed together (an outage)
    #: do not retry in lockstep; deterministic, so tests and replays are exact
    backoff_jitter: float = 0.5
    #: mixed into every jitter draw: a different seed, a different (reproducible) spread
    jitter_seed: int = 0
    submit_max_attempts: int = 8
    submit_backoff_base_s: float = 2.0
    submit_backoff_max_s: float = 300.0
    download_max_attempts: int = 6
    download_backoff_base_s: float = 2.0
    download_backoff_max_s: float = 300.0
    #: after `timed_out`, keep polling this rarely for a late success, for this long
    late_poll_interval_s: float = 300.0
    late_window_s: float = 86400.0
    #: what an `uncertain` job becomes after its grace period: hold | resubmit | fail
    uncertain_policy: UncertainPolicy = UncertainPolicy.HOLD
    uncertain_grace_s: float = 900.0
    #: how polls are spaced: fixed or adaptive, its knobs and the learned durations
    adaptive: Adaptive = field(default_factory=Adaptive)


@dataclass(frozen=True)
class Transition:
    """What to write: the new state, the changed fields, and why.

    Frozen through and through: ``changes`` is a read-only mapping, so a rule that wants to
    add to another rule's transition makes a new one (:meth:`with_changes`).
    """

    to_state: JobState
    changes: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    #: a callback token hash to record with this transition (submit_started)
    token_hash: str | None = None
    #: poll this job now (a callback claimed progress, a URL expired)
    wake_poller: bool = False
    #: a success's durations, for the learned history (written in the same transaction)
    learned: DurationSample | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))

    def with_changes(self, *, defaults: bool = False, **values: Any) -> Transition:
        """This transition with more changes; ``defaults`` keeps the ones already set."""
        merged = {**values, **self.changes} if defaults else {**self.changes, **values}
        return replace(self, changes=merged)

    def changes_for(self, job: Job, now: datetime) -> dict[str, Any]:
        """Every field this transition sets on ``job``: its changes, the state, and when (the
        reconciler hands exactly these to the store)."""
        changes = {**self.changes, "state": self.to_state, "updated_at": now}
        if "next_poll_at" in changes and "poll_note" not in changes:
            changes["poll_note"] = self.note if changes["next_poll_at"] is not None else None
        if self.to_state != job.state:
            changes["state_since"] = now
        return changes

    def apply(self, job: Job, now: datetime) -> Job:
        """The job after this transition."""
        return replace(job, **self.changes_for(job, now))


def _unit(key: str, n: int, seed: int) -> float:
    """A number in [0, 1), fixed for (key, n, seed)."""
    salt = f"{seed}:" if seed else ""
    digest = hashlib.blake2b(f"{salt}{key}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def jitter_factor(key: str, n: int, spread: float, seed: int = 0) -> float:
    """A factor in [1 - spread, 1 + spread], fixed for (key, n): spreads jobs, replays exactly."""
    return 1.0 + spread * (2.0 * _unit(key, n, seed) - 1.0)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2 base, 4 base, ... capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def jittered_backoff(
    job: Job, what: str, attempt: int, base: float, cap: float, policy: Policy
) -> float:
    """:func:`backoff` shrunk by a per-job factor in [1 - policy.backoff_jitter, 1].

    After an outage every job that failed retries at a different moment (never later than
    the plain backoff, so caps and Retry-After still bound it); the same job, attempt and
    seed always give the same delay.
    """
    u = _unit(f"{job.key}:{what}", attempt, policy.jitter_seed)
    return backoff(attempt, base, cap) * (1.0 - policy.backoff_jitter * u)


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def _next_poll(job: Job, now: datetime, policy: Policy) -> datetime:
    factor = jitter_factor(job.key, job.polls, policy.poll_jitter)
    return _after(now, policy.poll_interval_s * factor)


def _elapsed(job: Job, now: datetime) -> float:
    """Seconds since the current attempt's submit was accepted (0 before)."""
    if job.accepted_at is None:
        return 0.0
    return max(0.0, (now - job.accepted_at).total_seconds())


def _timeline(job: Job) -> Timeline:
    return Timeline.from_json(job.timeline)


def _seen(
    job: Job, status: UpstreamStatus, now: datetime, *, exact: bool
) -> tuple[Timeline, dict[str, Any]]:
    """The job's timeline after a report of ``status`` now, and the change that stores it
    (none before an accepted submit: there is nothing to measure from)."""
    timeline = _timeline(job).seen(status, _elapsed(job, now), exact=exact)
    return timeline, _stored(job, timeline)


def _stored(job: Job, timeline: Timeline) -> dict[str, Any]:
    return {} if job.accepted_at is None else {"timeline": timeline.to_json()}


def _planned(
    job: Job, timeline: Timeline, elapsed: float, now: datetime, policy: Policy, polls: int
) -> dict[str, Any]:
    """The next regular poll (fixed or adaptive, :mod:`orchestrator.schedule`) and why. A
    job whose progress was called back stays on the safety net (a poll that found it still
    running does not turn it into a polled job)."""
    if timeline.called_back():
        net = schedule.safety_net(
            job.kind,
            model_of(job.params),
            timeline,
            elapsed,
            polls,
            policy.poll_interval_s,
            policy.adaptive,
        )
        if net is not None and net.delay_s is not None:
            delay = max(policy.adaptive.min_gap_s, net.delay_s)
            return {"next_poll_at": _after(now, delay), "poll_note": net.note}
    plan = schedule.next_poll(
        job.kind,
        model_of(job.params),
        timeline,
        elapsed,
        polls,
        policy.poll_interval_s,
        policy.adaptive,
    )
    if plan.delay_s is None:
        return {"next_poll_at": _next_poll(job, now, policy), "poll_note": plan.note}
    # the same per-job jitter as the fixed interval: jobs never poll in lockstep, and
    # slightly different poll times make the learned brackets sharper
    delay = plan.delay_s * jitter_factor(job.key, job.polls, policy.poll_jitter)
    return {
        "next_poll_at": _after(now, max(policy.adaptive.min_gap_s, delay)),
        "poll_note": plan.note,
    }


def _status_rank(value: str | None) -> int:
    """The rank of a stored upstream status word (job.upstream_status, job.hint); -1 if none."""
    if value is None:
        return -1
    try:
        return STATUS_RANK[UpstreamStatus(value)]
    except ValueError:
        return -1


def _finish(to_state: JobState, now: datetime, note: str, **changes: Any) -> Transition:
    changes.setdefault("finished_at", now)
    changes.setdefault("next_poll_at", None)
    changes.setdefault("hint", None)
    return Transition(to_state, changes, note)


def decide(
    job: Job, observation: Observation, now: datetime, policy: Policy | None = None
) -> Transition | None:
    """Fold ``observation`` into ``job``; None when it changes nothing."""
    policy = policy or Policy()
    handler = _HANDLERS.get(type(observation))
    if handler is None:
        raise TypeError(f"no rule for observation {type(observation).__name__}")
    if superseded_attempt(job, observation) is not None:
        return None  # only the current attempt may set or resolve the taskId
    transition = handler(job, observation, now, policy)
    if transition is not None and not is_allowed(job.state, transition.to_state):
        raise AssertionError(f"rule produced a forbidden edge {job.state} -> {transition.to_state}")
    if isinstance(observation, (Polled, PollFailed)):
        _assert_future_poll(job, transition, now)
    return transition


def _assert_future_poll(job: Job, transition: Transition | None, now: datetime) -> None:
    """Every poll of a pollable job leaves its next poll in the future, or none at all."""
    state = transition.to_state if transition else job.state
    due = job.next_poll_at
    if transition is not None:
        due = transition.changes.get("next_poll_at", job.next_poll_at)
    if state in POLLABLE and due is not None and due <= now:
        raise AssertionError(f"a poll left job {job.key!r} ({state}) due again at once")


def superseded_attempt(job: Job, observation: Observation) -> int | None:
    """The attempt an observation answers, if that attempt is no longer the job's current one.

    A submit answer or a callback names the attempt it belongs to (the token's). An older
    attempt's task may well exist upstream (and be paid for), but it is not what the job
    tracks any more: the observation is recorded and changes nothing.
    """
    attempt: int | None = getattr(observation, "attempt", None)
    if attempt is not None and attempt != job.attempt:
        return attempt
    return None


def ignored_note(job: Job, observation: Observation) -> str:
    """Why ``decide`` returned None, for the event row (a few words)."""
    attempt = superseded_attempt(job, observation)
    if attempt is not None:
        return f"superseded attempt {attempt} (the job is on attempt {job.attempt}): no change"
    return "no change"


# --- submitter -------------------------------------------------------------------------------


def _submit_started(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, SubmitStarted)
    if job.state != S.QUEUED:
        return None
    last = job.error if _sent_and_waiting(job) else None
    if last is not None and last.watcher and obs.by is not None and last.watcher != obs.by:
        # The last answer may hide a created task, and only its callback can tell. The process
        # that waited for it is gone (its hold on the job lapsed, or it stopped): the callback
        # may have gone to it. Resending could pay twice; a late callback still resolves this.
        return Transition(
            S.UNCERTAIN,
            {
                "not_before": None,
                "error": JobError(
                    "submit",
                    last.code,
                    f"outcome unknown: the answer to attempt {job.submit_attempts} may hide a"
                    f" created task, and {last.watcher}, which waited for its callback, stopped",
                ),
            },
            "retry refused: the attempt's callback may have gone to a stopped process",
        )
    return Transition(
        S.SUBMITTING,
        {
            "submit_attempts": job.submit_attempts + 1,
            "attempt": job.attempt + 1,
            "not_before": None,
        },
        f"submit attempt {job.submit_attempts + 1}",
        token_hash=obs.token_hash,
    )


def _accepted_changes(job: Job, task_id: str, now: datetime, policy: Policy) -> dict[str, Any]:
    timeline = Timeline.start(job.polls)
    changes = {
        "task_id": task_id,
        "deadline_at": _after(now, policy.deadline_s),
        "error": None,
        "not_before": None,
        "accepted_at": now,
        "timeline": timeline.to_json(),
    }
    if job.hint:
        # A callback that arrived before the submit answer left a hint: poll at once.
        changes.update(next_poll_at=now, poll_note="an early callback is waiting for its poll")
    else:
        changes.update(_planned(job, timeline, 0.0, now, policy, job.polls))
    return changes


def _sent_and_waiting(job: Job) -> bool:
    """`queued` again after its current attempt was sent (a retryable error, or `resubmit`
    of an uncertain job): an answer or a callback of that attempt still proves acceptance.
    (`retry` starts a new attempt, so older tokens no longer match.)"""
    return job.state == S.QUEUED and job.submit_attempts > 0


def _proved_accepted(job: Job, task_id: str, now: datetime, policy: Policy, why: str) -> Transition:
    """The current attempt is proven accepted (by its token or its answer): track its task now,
    call off any scheduled resubmit, and poll at once."""
    changes = _accepted_changes(job, task_id, now, policy)
    changes.update(next_poll_at=now, poll_note=why)
    return Transition(S.PENDING, changes, why, wake_poller=True)


def _submit_accepted(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, SubmitAccepted)
    if _sent_and_waiting(job):
        # a late answer of the attempt that was sent: it was accepted after all
        return _proved_accepted(job, obs.task_id, now, policy, "late answer: upstream accepted")
    if job.state in (S.SUBMITTING, S.UNCERTAIN):
        return Transition(
            S.PENDING,
            _accepted_changes(job, obs.task_id, now, policy),
            "upstream accepted",
            wake_poller=bool(job.hint),  # an early callback is waiting for its poll
        )
    if job.task_id is None and job.state == S.CANCELLED:
        # cancelled while the submit was in flight: keep the taskId for the record
        return Transition(job.state, {"task_id": obs.task_id}, "accepted after cancel")
    return None


def _submit_failed(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, SubmitFailed)
    if job.state not in (S.SUBMITTING, S.UNCERTAIN):
        return None  # (uncertain: the answer of a submit whose worker was given up on)
    if job.task_id:
        # A callback with this attempt's token already proved the upstream accepted it: no
        # answer may lead to another submit (that would pay twice).
        return _proved_accepted(
            job,
            job.task_id,
            now,
            policy,
            f"accepted (proved by its callback) despite the answer: {obs.message}",
        )
    if obs.no_credits:
        return Transition(
            S.QUEUED,
            {
                "submit_attempts": max(0, job.submit_attempts - 1),
                "not_before": None,
                "error": JobError("submit", obs.code, obs.message),
            },
            "out of credits: queued until the balance is back",
        )
    if obs.retryable and job.submit_attempts < policy.submit_max_attempts:
        delay = jittered_backoff(
            job,
            "submit",
            job.submit_attempts,
            policy.submit_backoff_base_s,
            policy.submit_backoff_max_s,
            policy,
        )
        if obs.retry_after is not None:
            delay = max(delay, obs.retry_after)
        return Transition(
            S.QUEUED,
            {
                "not_before": _after(now, delay),
                "error": JobError("submit", obs.code, obs.message, obs.watcher),
            },
            f"retryable submit error, retry in {delay:.1f}s"
            + (" (by this process, once its callback had time to prove it)" if obs.watcher else ""),
        )
    why = "final submit error" if not obs.retryable else "submit attempts exhausted"
    return _finish(S.FAILED, now, why, error=JobError("submit", obs.code, obs.message))


def _submit_unknown(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, (SubmitUnknown, SubmitLeaseExpired))
    if job.state != S.SUBMITTING:
        return None
    message = obs.message if isinstance(obs, SubmitUnknown) else "worker lost mid-submit"
    if job.task_id:
        # An early callback with this attempt's token already proved the upstream accepted it.
        return _proved_accepted(
            job, job.task_id, now, policy, f"accepted (proved by an early callback); {message}"
        )
    return Transition(
        S.UNCERTAIN,
        {"error": JobError("submit", None, f"outcome unknown: {message}")},
        "submit outcome unknown",
    )


# --- upstream reports ------------------------------------------------------------------------


def _report_transition(
    job: Job, report: UpstreamReport, now: datetime, policy: Policy, *, via: str
) -> Transition | None:
    """Apply an authoritative report (a poll, or a callback in trust mode)."""
    if job.state not in POLLABLE:
        return None
    if report.task_id and job.task_id and report.task_id != job.task_id:
        return None  # someone else's task: the reconciler records it as suspicious
    confirmed = STATUS_RANK[report.status]
    hint_rank = _status_rank(job.hint)
    # a report behind what is already confirmed (record-info lag, reordering) is stale: it
    # may reschedule the poll but never moves upstream_status or the result backwards
    stale = confirmed < _status_rank(job.upstream_status)
    base: dict[str, Any] = {} if stale else {"upstream_status": report.status.value}
    if job.hint and confirmed >= hint_rank:
        base.update(hint=None, hint_polls=0)
    elapsed = _elapsed(job, now)
    timeline, stored = _seen(job, report.status, now, exact=via == "callback")
    base.update(stored)

    if report.status == UpstreamStatus.FAILED:
        if job.state == S.SUCCEEDED:
            return None  # the upstream already confirmed success; a failure cannot undo it
        if job.state == S.TIMED_OUT:
            # a late failure: nothing left to wait for
            return Transition(job.state, {**base, "next_poll_at": None}, "late failure")
        return _finish(
            S.FAILED,
            now,
            f"upstream reported failure ({via})",
            error=JobError("upstream", report.error_code, report.error_message or "failed"),
            **base,
        )

    if report.status == UpstreamStatus.SUCCESS:
        artifacts = artifacts_for(job.kind, report)
        if artifacts is not None:
            if job.state == S.SUCCEEDED:
                return _refresh_urls(job, artifacts, now, base)
            return Transition(
                S.SUCCEEDED,
                {
                    **base,
                    "result": report.result_json(),
                    "artifacts": tuple(replace(a, next_attempt_at=now) for a in artifacts),
                    "next_poll_at": None,
                    "hint": None,
                    "hint_polls": 0,
                    "error": None,
                    "finished_at": None,
                },
                f"upstream confirmed success ({via})",
                learned=_sample(job, timeline, now),
            )
        # SUCCESS without the URLs we need: treat as progress and keep polling

    if job.state == S.SUCCEEDED:
        return None
    to_state = job.state
    changes = dict(base)
    if job.state == S.PENDING and confirmed >= STATUS_RANK[UpstreamStatus.TEXT_SUCCESS]:
        to_state = S.RUNNING
    if (report.tracks or report.video_url) and not stale:
        changes["result"] = report.result_json()  # partial results as they appear
    if job.state == S.TIMED_OUT:
        late = _after(now, policy.late_poll_interval_s)
        changes["next_poll_at"] = late if late < _late_end(job, now, policy) else None
    elif job.hint and confirmed < hint_rank and (gap := _confirm_gap(job, policy)) is not None:
        # a callback claimed more than this poll shows (record-info lags): look again soon
        changes["next_poll_at"] = _after(now, gap)
        changes["hint_polls"] = job.hint_polls + 1
        changes["poll_note"] = (
            f"confirming a {job.hint} callback (record-info lags):"
            f" confirmation poll {job.hint_polls + 1} in {gap:.1f} s"
        )
    else:
        if job.hint and confirmed < hint_rank:
            # unconfirmed: back to the normal pace, and forget what only the callback claimed
            changes.update(hint=None, hint_polls=0)
            timeline = timeline.up_to(max(confirmed, _status_rank(job.upstream_status)))
            changes.update(_stored(job, timeline))
        polls = job.polls + 1 if via == "poll" else job.polls
        changes.update(_planned(job, timeline, elapsed, now, policy, polls))
    note = "progress" if to_state != job.state else "no change upstream"
    return Transition(to_state, changes, note)


def _confirm_gap(job: Job, policy: Policy) -> float | None:
    """The gap before the next confirmation poll of the job's hint, None when it is over: a
    terminal claim gets a short growing schedule (:func:`schedule.confirm_delay`), a
    progress claim one look."""
    if job.hint in (UpstreamStatus.SUCCESS.value, UpstreamStatus.FAILED.value):
        return schedule.confirm_delay(job.hint_polls, policy.confirm_delay_s, policy.adaptive)
    return policy.confirm_delay_s if job.hint_polls < 1 else None


def _sample(job: Job, timeline: Timeline, now: datetime) -> DurationSample | None:
    """What a success teaches the schedule (None: no accepted submit to measure from)."""
    if job.accepted_at is None:
        return None
    return timeline.sample(job.kind, model_of(job.params), now)


def _refresh_urls(
    job: Job, fresh: tuple[Artifact, ...], now: datetime, base: dict[str, Any]
) -> Transition | None:
    """A poll after success: give artifacts not yet stored their fresh URLs."""
    by_name = {a.name: a for a in fresh}
    # named otherwise before (another title, an older naming scheme): the same place in the list
    by_place = len(fresh) == len(job.artifacts)
    updated: list[Artifact] = []
    changed = False
    for n, artifact in enumerate(job.artifacts):
        new = by_name.get(artifact.name) or (fresh[n] if by_place else None)
        if artifact.state == ArtifactState.STORED or new is None:
            updated.append(artifact)
            continue
        if new.url != artifact.url or artifact.next_attempt_at is None:
            changed = True
            updated.append(replace(artifact, url=new.url, next_attempt_at=now))
        else:
            updated.append(artifact)
    if not changed and job.next_poll_at is None:
        return None
    return Transition(
        S.SUCCEEDED,
        {**base, "artifacts": tuple(updated), "next_poll_at": None},
        "fresh result URLs",
    )


def _polled(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, Polled)
    transition = _report_transition(job, obs.report, now, policy, via="poll")
    if transition is None:
        # An answer the rules ignore (another task's id, a failure after a confirmed
        # success, a success without URLs while downloading) must still move the next poll
        # out, or the job would be due again at every tick and drain the poll budget.
        if job.state in POLLABLE and job.next_poll_at is not None and job.next_poll_at <= now:
            return _poll_later(job, now, policy, "poll answer ignored")
        return None
    return transition.with_changes(defaults=True, poll_failures=0)  # a poll that worked


def _poll_failed(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, PollFailed)
    if job.state not in POLLABLE or job.next_poll_at is None:
        return None
    return _poll_later(job, now, policy, "poll failed", retry_after=obs.retry_after)


def _late_end(job: Job, now: datetime, policy: Policy) -> datetime:
    """When a `timed_out` job stops looking for a late result."""
    return (job.deadline_at or now) + timedelta(seconds=policy.late_window_s)


def _poll_later(
    job: Job, now: datetime, policy: Policy, why: str, *, retry_after: float | None = None
) -> Transition:
    """A poll that brought nothing usable: back off (with jitter), and for a `timed_out` job
    never past the end of its late window, whether its polls fail or succeed."""
    failures = job.poll_failures + 1
    delay = jittered_backoff(
        job, "poll", failures, policy.poll_backoff_base_s, policy.poll_backoff_max_s, policy
    )
    if retry_after is not None:
        delay = max(delay, retry_after)
    if job.state == S.TIMED_OUT:
        delay = max(delay, policy.late_poll_interval_s)
        if _after(now, delay) >= _late_end(job, now, policy):
            return Transition(
                job.state,
                {"poll_failures": failures, "next_poll_at": None},
                f"{why}; late window over, no more polls",
            )
    return Transition(
        job.state,
        {"poll_failures": failures, "next_poll_at": _after(now, delay)},
        f"{why}, retry in {delay:.1f}s",
    )


def _callback(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, CallbackReceived)
    report = obs.report
    if job.state == S.UNCERTAIN or _sent_and_waiting(job):
        if not report.task_id:
            return None
        # The token proves this callback answers our current attempt: the upstream accepted
        # it. Uncertain is resolved; a resubmit waiting in `queued` is called off.
        if job.state == S.UNCERTAIN:
            why = "callback resolved uncertain submit"
        else:
            why = "callback proved the attempt accepted: resubmit called off"
        accepted = _proved_accepted(job, report.task_id, now, policy, why)
        if STATUS_RANK[report.status] > STATUS_RANK[UpstreamStatus.PENDING]:
            return accepted.with_changes(hint=report.status.value, hint_polls=0)
        return accepted
    if job.state in TERMINAL or job.state in (S.QUEUED, S.WAITING):
        return None
    if report.task_id and job.task_id and report.task_id != job.task_id:
        return None
    rank = STATUS_RANK[report.status]
    confirmed = _status_rank(job.upstream_status)
    hint_rank = _status_rank(job.hint)
    if job.state == S.SUBMITTING:
        # Early callback: the submit answer is not recorded yet. Remember it; poll on accept.
        # Its taskId is kept: the token proves the upstream accepted this attempt, so a lost
        # submit answer can no longer leave the job uncertain (and risk paying twice).
        if rank <= hint_rank and (job.task_id or not report.task_id):
            return None
        changes: dict[str, Any] = {"hint": report.status.value, "hint_polls": 0}
        if report.task_id and not job.task_id:
            changes["task_id"] = report.task_id
        if rank <= hint_rank:
            changes.pop("hint")
            changes.pop("hint_polls")
        return Transition(job.state, changes, "early callback")
    if obs.trusted:
        if rank <= confirmed and report.status != UpstreamStatus.SUCCESS:
            return None  # no more than a poll already confirmed: stale or a duplicate
        transition = _report_transition(job, report, now, policy, via="callback")
        if transition is not None and transition.to_state not in TERMINAL:
            # polling continues until terminal in both modes
            return transition.with_changes(defaults=True, next_poll_at=_next_poll(job, now, policy))
        return transition
    # verify mode: the callback only says "look now"; only a claim beyond what we know counts
    if job.state == S.SUCCEEDED or rank <= max(confirmed, hint_rank):
        return None
    if report.status not in (UpstreamStatus.SUCCESS, UpstreamStatus.FAILED):
        # Progress: callbacks are flowing for this job, so the outcome will be announced too.
        # Keep only a slow safety-net poll instead of polling on every stage (each stage can
        # push it once, so a forged callback delays polling by a bounded amount).
        # The learned durations say when the terminal callback should have come by.
        timeline, stored = _seen(job, report.status, now, exact=True)
        learned = schedule.safety_net(
            job.kind,
            model_of(job.params),
            timeline,
            _elapsed(job, now),
            job.polls,
            policy.poll_interval_s,
            policy.adaptive,
        )
        if learned is not None and learned.delay_s is not None:
            safety, why = _after(now, learned.delay_s), learned.note
        else:
            safety = _after(now, policy.poll_interval_s * policy.callback_poll_factor)
            safety = max(job.next_poll_at or safety, safety)
            why = f"safety net: {policy.callback_poll_factor:g} intervals (callbacks alive)"
        changes = {
            "hint": report.status.value,
            "hint_polls": 0,
            "next_poll_at": safety,
            "poll_note": why,
            **stored,
        }
        return Transition(
            job.state,
            changes,
            f"callback claims {report.status.value}: callbacks alive, safety-net poll later",
        )
    _, stored = _seen(job, report.status, now, exact=True)
    changes = {"hint": report.status.value, "hint_polls": 0, "next_poll_at": now, **stored}
    return Transition(
        job.state,
        changes,
        f"callback claims {report.status.value}: poll now",
        wake_poller=True,
    )


# --- downloader ------------------------------------------------------------------------------


def _artifact_stored(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, ArtifactStored)
    if job.state != S.SUCCEEDED:
        return None
    current = job.artifact(obs.artifact)
    if current is None or current.state == ArtifactState.STORED:
        return None
    stored = replace(
        current,
        state=ArtifactState.STORED,
        path=obs.path,
        bytes=obs.bytes,
        sha256=obs.sha256,
        next_attempt_at=None,
        last_error=None,
    )
    artifacts = tuple(stored if a.name == obs.artifact else a for a in job.artifacts)
    if all(a.state == ArtifactState.STORED for a in artifacts):
        return _finish(S.COMPLETED, now, "every artifact stored", artifacts=artifacts, error=None)
    return Transition(S.SUCCEEDED, {"artifacts": artifacts}, f"stored {obs.artifact}")


def _download_failed(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, DownloadFailed)
    if job.state != S.SUCCEEDED:
        return None
    current = job.artifact(obs.artifact)
    if current is None or current.state == ArtifactState.STORED:
        return None
    attempts = current.attempts + 1
    if obs.reason == DownloadFailure.REFUSED or attempts >= policy.download_max_attempts:
        return _finish(
            S.FAILED,
            now,
            "download gave up",
            error=JobError("download", obs.reason.value, f"{obs.artifact}: {obs.message}"),
        )
    changes: dict[str, Any] = {}
    if obs.reason == DownloadFailure.EXPIRED:
        # wait for a poll to bring a fresh URL; the poll resets next_attempt_at
        updated = replace(current, attempts=attempts, next_attempt_at=None, last_error=obs.message)
        changes["next_poll_at"] = now
        note = f"{obs.artifact}: URL expired, polling for a fresh one"
    else:
        delay = jittered_backoff(
            job,
            f"download:{obs.artifact}",
            attempts,
            policy.download_backoff_base_s,
            policy.download_backoff_max_s,
            policy,
        )
        updated = replace(
            current,
            attempts=attempts,
            next_attempt_at=_after(now, delay),
            last_error=obs.message,
        )
        note = f"{obs.artifact}: retry in {delay:.1f}s"
    changes["artifacts"] = tuple(updated if a.name == obs.artifact else a for a in job.artifacts)
    return Transition(S.SUCCEEDED, changes, note, wake_poller=obs.reason == DownloadFailure.EXPIRED)


# --- clock-driven ----------------------------------------------------------------------------


def _deadline(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    if job.state not in (S.PENDING, S.RUNNING) or job.deadline_at is None or now < job.deadline_at:
        return None
    return Transition(
        S.TIMED_OUT,
        {
            "finished_at": now,
            "error": JobError("deadline", None, f"no outcome after {policy.deadline_s:.0f}s"),
            "next_poll_at": _after(now, policy.late_poll_interval_s),
            "hint": None,
        },
        "deadline passed",
    )


def _uncertain_grace(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    if job.state != S.UNCERTAIN:
        return None
    if policy.uncertain_policy == UncertainPolicy.RESUBMIT:
        return Transition(S.QUEUED, {"not_before": now}, "policy: resubmit after grace")
    if policy.uncertain_policy == UncertainPolicy.FAIL:
        return _finish(
            S.FAILED,
            now,
            "policy: fail after grace",
            error=JobError("submit", None, "submit outcome unknown; failed by policy"),
        )
    return None  # hold: the operator decides


# --- operator --------------------------------------------------------------------------------


def _cancel(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    if job.state in TERMINAL:
        return None
    return _finish(S.CANCELLED, now, "cancelled by operator", not_before=None)


def _retry(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    if job.state == S.FAILED and job.error is not None and job.error.stage == "download":
        # the upstream result is paid for: fetch again, do not resubmit
        artifacts = tuple(
            a if a.state == ArtifactState.STORED else replace(a, attempts=0, next_attempt_at=None)
            for a in job.artifacts
        )
        return Transition(
            S.SUCCEEDED,
            {"artifacts": artifacts, "error": None, "finished_at": None, "next_poll_at": now},
            "retry downloads with fresh URLs",
            wake_poller=True,
        )
    if job.state not in (S.FAILED, S.CANCELLED, S.TIMED_OUT):
        return None
    if job.for_each is not None and expanded(job) is not None:
        # its children are what it waits for (the service retries the failed ones)
        return Transition(
            S.WAITING, {"error": None, "finished_at": None}, "retry: wait for the children again"
        )
    fresh = {
        "task_id": None,
        "submit_attempts": 0,
        # a new attempt: the old one's tokens and late answers no longer count
        "attempt": job.attempt + 1,
        "result": None,
        "artifacts": (),
        "error": None,
        "finished_at": None,
        "next_poll_at": None,
        "deadline_at": None,
        "not_before": None,
        "hint": None,
        "hint_polls": 0,
        "poll_failures": 0,
        "upstream_status": None,
        "accepted_at": None,
        "timeline": None,
    }
    if job.template is not None:
        # released again from its parents (the same params, if they completed)
        return Transition(
            S.WAITING, {**fresh, "params": job.template}, "retry: wait for the parents again"
        )
    return Transition(S.QUEUED, fresh, "retry: a new attempt")


def _resolve(job: Job, obs: Observation, now: datetime, policy: Policy) -> Transition | None:
    assert isinstance(obs, ResolveRequested)
    if job.state != S.UNCERTAIN:
        return None
    if obs.action == Resolution.RESUBMIT:
        return Transition(S.QUEUED, {"not_before": None}, "operator: resubmit")
    if obs.action == Resolution.FAIL:
        return _finish(
            S.FAILED, now, "operator: fail", error=JobError("operator", None, "failed by operator")
        )
    if not obs.task_id:
        return None
    return _proved_accepted(job, obs.task_id, now, policy, "operator: taskId given")


# --- pipelines -------------------------------------------------------------------------------


def _parents_completed(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, ParentsCompleted)
    if job.state != S.WAITING or job.for_each is not None:
        return None
    return Transition(
        S.QUEUED, {"params": obs.params, "not_before": None}, "every parent completed"
    )


def _children_recorded(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, ChildrenRecorded)
    if job.state != S.WAITING or job.for_each is None or expanded(job) is not None:
        return None
    return Transition(
        S.WAITING,
        {"result": {"children": list(obs.children)}},
        f"{len(obs.children)} children recorded",
    )


def _children_completed(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    if job.state != S.WAITING or expanded(job) is None:
        return None
    return _finish(S.COMPLETED, now, "every child completed")


def _dependency_failed(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    assert isinstance(obs, DependencyFailed)
    if job.state != S.WAITING:
        return None
    return _finish(S.FAILED, now, obs.message, error=JobError("dependency", obs.code, obs.message))


def _dependency_retried(
    job: Job, obs: Observation, now: datetime, policy: Policy
) -> Transition | None:
    error = job.error
    if job.state != S.FAILED or error is None or error.code != PARENT_FAILED:
        return None
    assert isinstance(obs, DependencyRetried)
    return Transition(
        S.WAITING, {"error": None, "finished_at": None}, f"{obs.parent} retried: waiting again"
    )


_HANDLERS = {
    SubmitStarted: _submit_started,
    SubmitAccepted: _submit_accepted,
    SubmitFailed: _submit_failed,
    SubmitUnknown: _submit_unknown,
    SubmitLeaseExpired: _submit_unknown,
    Polled: _polled,
    PollFailed: _poll_failed,
    CallbackReceived: _callback,
    ArtifactStored: _artifact_stored,
    DownloadFailed: _download_failed,
    DeadlinePassed: _deadline,
    UncertainGraceOver: _uncertain_grace,
    CancelRequested: _cancel,
    RetryRequested: _retry,
    ResolveRequested: _resolve,
    ParentsCompleted: _parents_completed,
    ChildrenRecorded: _children_recorded,
    ChildrenCompleted: _children_completed,
    DependencyFailed: _dependency_failed,
    DependencyRetried: _dependency_retried,
}
