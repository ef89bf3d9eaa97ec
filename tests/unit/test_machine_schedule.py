"""The adaptive schedule through the machine: accept, polls and callbacks folded with a moved
clock, what each leaves as the next poll and why, and what a success teaches."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from orchestrator.domain import Job
from orchestrator.machine import Policy, decide
from orchestrator.observations import CallbackReceived, Polled, SubmitAccepted
from orchestrator.observations import UpstreamStatus as U
from orchestrator.schedule import Adaptive
from orchestrator.states import JobState as S
from tests.unit.test_machine_table import T0, TASK, job_in, report
from tests.unit.test_schedule import book_of, realistic

LEARNED = Policy(
    backoff_jitter=0.0, poll_jitter=0.0, adaptive=Adaptive(book=book_of(realistic(100)))
)
COLD = Policy(backoff_jitter=0.0, poll_jitter=0.0)


def accepted(policy: Policy) -> Job:
    job = replace(job_in(S.SUBMITTING), params={"model": "V4", "prompt": "p"})
    transition = decide(job, SubmitAccepted(task_id=TASK, attempt=job.attempt), T0, policy)
    assert transition is not None
    return transition.apply(job, T0)


def step(job: Job, obs: object, seconds: float, policy: Policy) -> Job:
    now = T0 + timedelta(seconds=seconds)
    transition = decide(job, obs, now, policy)  # type: ignore[arg-type]
    assert transition is not None
    after = transition.apply(job, now)
    if isinstance(obs, Polled):
        after = replace(after, polls=job.polls + 1)  # the reconciler counts polls
    return after


def due_in(job: Job, seconds: float) -> float:
    assert job.next_poll_at is not None
    return (job.next_poll_at - T0).total_seconds() - seconds


def test_a_cold_start_polls_at_the_interval_and_a_learned_one_where_jobs_finish() -> None:
    cold, learned = accepted(COLD), accepted(LEARNED)
    assert due_in(cold, 0) == 30.0
    assert cold.poll_note is not None and cold.poll_note.startswith("adaptive, cold start")
    assert due_in(learned, 0) > 40.0  # nothing learned finishes sooner
    assert learned.poll_note is not None and "budgeted polls used" in learned.poll_note
    assert learned.accepted_at == T0 and learned.timeline is not None


def test_a_success_carries_its_durations_for_the_history() -> None:
    job = step(accepted(LEARNED), Polled(report(U.FIRST_SUCCESS)), 44.0, LEARNED)
    now = T0 + timedelta(seconds=52.0)
    transition = decide(job, Polled(report(U.SUCCESS)), now, LEARNED)
    assert transition is not None and transition.to_state == S.SUCCEEDED
    sample = transition.learned
    assert sample is not None and sample.kind == job.kind and sample.model == "V4"
    assert sample.done == (44.0, 52.0) and sample.first == (0.0, 44.0)


def test_a_job_whose_progress_was_called_back_stays_on_the_safety_net() -> None:
    job = step(accepted(LEARNED), CallbackReceived(report(U.FIRST_SUCCESS)), 40.0, LEARNED)
    assert job.poll_note is not None and job.poll_note.startswith("safety net")
    assert due_in(job, 40.0) > 10.0  # when the complete callback should have come, + margin
    # a poll before then (one already due) finds the job still running
    at = 45.0
    job = step(job, Polled(report(U.FIRST_SUCCESS)), at, LEARNED)
    assert job.poll_note is not None and job.poll_note.startswith("safety net"), job.poll_note
    assert due_in(job, at) > 5.0
    # past everything learned, the plain interval (a slow outlier costs what it would cost)
    late = step(job, Polled(report(U.FIRST_SUCCESS)), 200.0, LEARNED)
    assert due_in(late, 200.0) == 30.0
    # without callbacks the same poll would be a budgeted slice of the schedule
    polled = step(accepted(LEARNED), Polled(report(U.FIRST_SUCCESS)), at, LEARNED)
    assert polled.poll_note is not None and polled.poll_note.startswith("adaptive: ")
