"""Domain records: frozen dataclasses, separate from the store's table rows.

Every datetime here is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestrator.states import JobState

JSON = dict[str, Any]


class ArtifactState(StrEnum):
    #: known URL, not stored yet
    PENDING = "pending"
    #: stored on disk, bytes and sha256 recorded
    STORED = "stored"


@dataclass(frozen=True)
class Artifact:
    """One file a job yields: an audio track, a cover image, a video."""

    name: str  #: file name under artifacts_dir/<job key>/, derived from sanitised ids only
    url: str  #: where to fetch it (the latest verified URL)
    media: str  #: "audio" | "image" | "video" | "text" (an inline result, as a data: URL)
    state: ArtifactState = ArtifactState.PENDING
    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class JobError:
    stage: str  #: "submit" | "upstream" | "download" | "deadline" | "operator" | "dependency"
    code: int | str | None
    message: str
    #: a submit answered with an error that may hide a created task (5xx, maintenance): the
    #: process waiting for that attempt's callback, the one that may send the retry
    watcher: str | None = None

    def to_json(self) -> JSON:
        out: JSON = {"stage": self.stage, "code": self.code, "message": self.message}
        if self.watcher is not None:
            out["watcher"] = self.watcher
        return out


@dataclass(frozen=True)
class Job:
    """A job as the state machine sees it."""

    id: int
    key: str
    kind: str
    provider: str
    state: JobState
    params: JSON
    created_at: datetime
    updated_at: datetime
    version: int = 0
    task_id: str | None = None
    #: normalised upstream result ({"status", "tracks": [...], "video_url"}) or None
    result: JSON | None = None
    artifacts: tuple[Artifact, ...] = ()
    error: JobError | None = None
    polls: int = 0
    callbacks: int = 0
    #: submits sent in the current cycle (reset by `retry`; bounded by submit_max_attempts)
    submit_attempts: int = 0
    #: the current submit attempt's number: grows with every submit and every `retry`, never
    #: reset; a callback token belongs to one attempt, and only the current one may set or
    #: resolve task_id
    attempt: int = 0
    finished_at: datetime | None = None
    #: when the next poll is due (None: not polled)
    next_poll_at: datetime | None = None
    #: earliest time the next submit attempt may go out (retry backoff)
    not_before: datetime | None = None
    deadline_at: datetime | None = None
    #: consecutive failed polls, for backoff
    poll_failures: int = 0
    #: the furthest upstream status a callback claimed that no poll confirmed yet (verify mode)
    hint: str | None = None
    #: confirmation polls already made for the current hint
    hint_polls: int = 0
    #: the upstream status last confirmed (PENDING, TEXT_SUCCESS, ...), for `show`
    upstream_status: str | None = None
    #: when the job entered its current state
    state_since: datetime | None = None
    #: when the current attempt's submit was accepted (durations are measured from here)
    accepted_at: datetime | None = None
    #: what the current attempt was seen doing (orchestrator.schedule.Timeline as JSON)
    timeline: JSON | None = None
    #: why the next poll is when it is (the schedule's explanation, for `show`)
    poll_note: str | None = None
    #: keys of the jobs this one waits for (``after``; a for_each child: its for_each job)
    parents: tuple[str, ...] = ()
    #: ``KEY.tracks`` or ``KEY.result.PATH``: one child per item, made when the parents complete
    for_each: str | None = None
    #: the params as written, references unresolved (None: the job has no parents)
    template: JSON | None = None

    def artifact(self, name: str) -> Artifact | None:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        return None

    def to_json(self) -> JSON:
        """The job as the interface contract shows it (status --json, show --json, HTTP)."""
        from orchestrator.clock import isoformat

        return {
            "key": self.key,
            "kind": self.kind,
            "state": self.state.value,
            "provider": self.provider,
            "task_id": self.task_id,
            "params": self.params,
            "result": self.result,
            "artifacts": [
                {
                    "name": a.name,
                    "url": a.url,
                    "path": a.path,
                    "bytes": a.bytes,
                    "sha256": a.sha256,
                }
                for a in self.artifacts
            ],
            "error": self.error.to_json() if self.error else None,
            "polls": self.polls,
            "callbacks": self.callbacks,
            "submit_attempts": self.submit_attempts,
            "attempt": self.attempt,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
            "finished_at": isoformat(self.finished_at),
            "next_poll_at": isoformat(self.next_poll_at),
            "next_poll_reason": self.poll_note if self.next_poll_at is not None else None,
            "deadline_at": isoformat(self.deadline_at),
            "upstream_status": self.upstream_status,
            "parents": list(self.parents),
            "for_each": self.for_each,
        }


@dataclass(frozen=True)
class NewJob:
    """A job to record (from config, CLI, script or HTTP)."""

    key: str
    kind: str
    params: JSON
    provider: str
    #: parents: the job is recorded `waiting` and released once they all completed
    after: tuple[str, ...] = ()
    for_each: str | None = None
    #: a for_each child: its params are resolved already, it is recorded `queued`
    resolved: bool = False

    @property
    def initial_state(self) -> JobState:
        return JobState.WAITING if self.after and not self.resolved else JobState.QUEUED

    @property
    def template(self) -> JSON | None:
        return self.params if self.after and not self.resolved else None


@dataclass(frozen=True)
class Event:
    """One row of a job's append-only event log: an observation and what it did."""

    id: int
    job_id: int
    at: datetime
    source: str  #: "submitter" | "poll" | "callback" | "downloader" | "deadline" | "operator" | ...
    type: str  #: the observation's name, e.g. "submit_accepted", "upstream_report"
    from_state: JobState | None
    to_state: JobState | None  #: None when the observation changed nothing (duplicate, stale)
    payload: JSON = field(default_factory=dict)  #: the observation (raw body for callbacks)
    note: str = ""  #: why, in a few words
    #: which daemon (or CLI process) wrote it: host:pid:random; None before schema 4's column
    node: str | None = None


class NotificationState(StrEnum):
    PENDING = "pending"  #: due at ``next_attempt_at``
    DELIVERED = "delivered"  #: a 2xx answer (a command: exit 0)
    DEAD = "dead"  #: the schedule ran out, 410, or its target is no longer configured


@dataclass(frozen=True)
class Notification:
    """One outbox row: a message to one target, written with the transition that caused it."""

    id: int
    webhook_id: str  #: the receiver's idempotency key: the same on every attempt and replay
    target: str
    event: str
    job_id: int | None  #: None for a `notify test` ping
    body: JSON
    state: NotificationState
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class NotificationAttempt:
    """One try: the answer's status (None: no answer) or the error, and how long it took."""

    at: datetime
    status: int | None
    error: str | None
    duration_s: float


@dataclass(frozen=True)
class NewNotification:
    """An outbox row to write with a transition (orchestrator.notifications makes them)."""

    webhook_id: str
    target: str
    event: str
    body: JSON = field(repr=False)
    due_at: datetime


@dataclass(frozen=True)
class NewEvent:
    source: str
    type: str
    payload: JSON
    note: str = ""
