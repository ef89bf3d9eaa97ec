"""Job states, the edges between them, and which are terminal.

This module is data only; the rules that pick an edge live in :mod:`orchestrator.machine`.
docs/states.md draws the same table as a diagram.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    #: recorded with parents (``after``); released to `queued` once every parent completed
    #: (a ``for_each`` job stays here until its children are done)
    WAITING = "waiting"
    #: accepted locally, not yet sent to the upstream
    QUEUED = "queued"
    #: a worker claimed it; the submit request may be in flight
    SUBMITTING = "submitting"
    #: crashed or cut off mid-submit: whether the upstream accepted it is unknown
    UNCERTAIN = "uncertain"
    #: the upstream accepted it (taskId known), no progress reported yet
    PENDING = "pending"
    #: the upstream reported progress (text or first track ready)
    RUNNING = "running"
    #: the upstream confirmed success; result URLs known; files not all stored yet
    SUCCEEDED = "succeeded"
    #: every artifact stored and verified on disk
    COMPLETED = "completed"
    #: the upstream reported failure, or a final submit or download error
    FAILED = "failed"
    #: the deadline passed with no upstream outcome (a late success is still accepted)
    TIMED_OUT = "timed_out"
    #: the operator stopped tracking it
    CANCELLED = "cancelled"


S = JobState

#: Every edge the machine may take. A transition to the same state (a scheduling or partial
#: result update) is always allowed and is not listed.
EDGES: dict[JobState, frozenset[JobState]] = {
    # waiting -> queued: every parent completed (params resolved); -> completed: a for_each
    # job whose children all completed; -> failed: a parent (or child) did not complete
    S.WAITING: frozenset({S.QUEUED, S.COMPLETED, S.FAILED, S.CANCELLED}),
    # queued -> pending: the attempt sent before (a retryable error, or `resubmit` of an
    # uncertain job) proves accepted by its callback or a late answer; the resubmit is off
    # queued -> uncertain: a retry whose proof (the attempt's callback) another process waited
    # for, and that process stopped
    S.QUEUED: frozenset({S.SUBMITTING, S.PENDING, S.UNCERTAIN, S.CANCELLED}),
    S.SUBMITTING: frozenset({S.PENDING, S.FAILED, S.QUEUED, S.UNCERTAIN, S.CANCELLED}),
    # uncertain -> queued also when the lost worker's late answer says "not created, retry"
    S.UNCERTAIN: frozenset({S.PENDING, S.QUEUED, S.FAILED, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    # `retry` (after a download failure: fetch again; a job with parents waits for them again)
    S.FAILED: frozenset({S.QUEUED, S.SUCCEEDED, S.WAITING}),
    # late success; `retry` (a job with parents waits for them again)
    S.TIMED_OUT: frozenset({S.SUCCEEDED, S.QUEUED, S.WAITING, S.CANCELLED}),
    S.CANCELLED: frozenset({S.QUEUED, S.WAITING}),  # only by the operator's `retry`
}

#: States no upstream observation moves a job out of (operator retry aside).
TERMINAL: frozenset[JobState] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})

#: States where the job has been finished as far as the upstream is concerned.
FINISHED: frozenset[JobState] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMED_OUT})

#: States in which a task exists upstream and its detail endpoint is worth polling.
POLLABLE: frozenset[JobState] = frozenset({S.PENDING, S.RUNNING, S.SUCCEEDED, S.TIMED_OUT})

#: Progress order: a job never moves to a lower rank through an upstream observation.
RANK: dict[JobState, int] = {
    S.WAITING: 0,
    S.QUEUED: 0,
    S.SUBMITTING: 1,
    S.UNCERTAIN: 1,
    S.PENDING: 2,
    S.RUNNING: 3,
    S.TIMED_OUT: 3,
    S.SUCCEEDED: 4,
    S.COMPLETED: 5,
    S.FAILED: 5,
    S.CANCELLED: 5,
}


def is_allowed(from_state: JobState, to_state: JobState) -> bool:
    return from_state == to_state or to_state in EDGES[from_state]
