"""Observations: everything that can happen to a job, as frozen records.

Submit responses, poll results, callbacks, download results, deadlines and operator commands
are all observations. Each is written to the job's event log and folded into the job by
:func:`orchestrator.machine.decide`. ``source`` and ``name`` are stable strings used in the
event log and in logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class UpstreamStatus(StrEnum):
    """A provider's task status, normalised. Providers map their own vocabulary onto this."""

    PENDING = "PENDING"
    TEXT_SUCCESS = "TEXT_SUCCESS"
    FIRST_SUCCESS = "FIRST_SUCCESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


#: How far along each status is; FAILED is as final as SUCCESS.
STATUS_RANK: dict[UpstreamStatus, int] = {
    UpstreamStatus.PENDING: 0,
    UpstreamStatus.TEXT_SUCCESS: 1,
    UpstreamStatus.FIRST_SUCCESS: 2,
    UpstreamStatus.SUCCESS: 3,
    UpstreamStatus.FAILED: 3,
}


@dataclass(frozen=True)
class Track:
    """One generated track, normalised from record-info (camelCase) or a callback (snake_case)."""

    id: str
    audio_url: str | None = None
    stream_url: str | None = None
    image_url: str | None = None
    title: str | None = None
    tags: str | None = None
    duration: float | None = None
    model: str | None = None
    created_at: str | None = None  #: ISO 8601 UTC


@dataclass(frozen=True)
class UpstreamReport:
    """What the upstream says about one task, from a poll or a callback."""

    status: UpstreamStatus
    task_id: str | None
    tracks: tuple[Track, ...] = ()
    video_url: str | None = None
    #: a media task's result files by label ("video", "audio_wav", "vocal", ...), in the
    #: order the upstream listed them (music video, WAV, vocal removal)
    files: tuple[tuple[str, str], ...] = ()
    #: a lyrics task's texts, (title, text) per variant
    texts: tuple[tuple[str, str], ...] = ()
    error_code: int | None = None
    error_message: str | None = None
    #: the provider's own status word (e.g. SENSITIVE_WORD_ERROR, CALLBACK_EXCEPTION, "first")
    raw_status: str | None = None

    def result_json(self) -> dict[str, Any]:
        """The normalised result stored on the job."""
        return {
            "status": self.status.value,
            "raw_status": self.raw_status,
            "tracks": [asdict(t) for t in self.tracks],
            "video_url": self.video_url,
            "files": dict(self.files),
            "lyrics": [{"title": title, "text": text} for title, text in self.texts],
        }


@dataclass(frozen=True)
class Observation:
    source: ClassVar[str] = "system"
    name: ClassVar[str] = "observation"

    def payload(self) -> dict[str, Any]:
        return asdict(self)


# --- submitter -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitStarted(Observation):
    """A worker is about to send the submit; the callback token for this attempt is recorded."""

    source: ClassVar[str] = "submitter"
    name: ClassVar[str] = "submit_started"
    token_hash: str = field(repr=False)
    #: the process about to send (a retry whose proof another process waited for is refused)
    by: str | None = None

    def payload(self) -> dict[str, Any]:
        return {}  # the token hash stays in its own table


# ``attempt`` on the observations below names the submit attempt they answer (Job.attempt
# when it was sent; a callback's comes from its token). Only the job's CURRENT attempt may
# set or resolve its taskId: an answer or a callback of a superseded attempt is recorded and
# changes nothing (docs/states.md, "Attempts and tokens"). None: the caller does not know
# (tests, operator input); it is read as the current attempt.


@dataclass(frozen=True)
class SubmitAccepted(Observation):
    source: ClassVar[str] = "submitter"
    name: ClassVar[str] = "submit_accepted"
    task_id: str
    attempt: int | None = None


@dataclass(frozen=True)
class SubmitFailed(Observation):
    source: ClassVar[str] = "submitter"
    name: ClassVar[str] = "submit_failed"
    retryable: bool
    message: str
    code: int | None = None
    retry_after: float | None = None
    attempt: int | None = None
    #: the account cannot pay (nothing was created): back to `queued`, the attempt not
    #: counted, while the credit guard holds the queue
    no_credits: bool = False
    #: the upstream answered with an error that may hide a created task (5xx, maintenance):
    #: the process that waits for the attempt's callback (only it may send the retry)
    watcher: str | None = None


@dataclass(frozen=True)
class SubmitUnknown(Observation):
    """The request may have reached the upstream, but no answer was recorded."""

    source: ClassVar[str] = "submitter"
    name: ClassVar[str] = "submit_unknown"
    message: str
    attempt: int | None = None


@dataclass(frozen=True)
class SubmitLeaseExpired(Observation):
    """Recovery: a job stayed `submitting` past its lease (its worker died mid-submit)."""

    source: ClassVar[str] = "recovery"
    name: ClassVar[str] = "submit_lease_expired"


# --- poller and callbacks --------------------------------------------------------------------


@dataclass(frozen=True)
class Polled(Observation):
    """The detail endpoint's answer: authoritative."""

    source: ClassVar[str] = "poll"
    name: ClassVar[str] = "polled"
    report: UpstreamReport


@dataclass(frozen=True)
class PollFailed(Observation):
    source: ClassVar[str] = "poll"
    name: ClassVar[str] = "poll_failed"
    message: str
    code: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class CallbackReceived(Observation):
    """A callback that passed validation. ``trusted`` is true only in `trust` mode;
    ``attempt`` is the submit attempt its token was issued for."""

    source: ClassVar[str] = "callback"
    name: ClassVar[str] = "callback_received"
    report: UpstreamReport
    trusted: bool = False
    attempt: int | None = None


# --- downloader ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactStored(Observation):
    source: ClassVar[str] = "downloader"
    name: ClassVar[str] = "artifact_stored"
    artifact: str
    path: str
    bytes: int
    sha256: str


class DownloadFailure(StrEnum):
    TRANSIENT = "transient"  #: retry with backoff
    EXPIRED = "expired"  #: 403/404: poll again for a fresh URL, then retry
    REFUSED = "refused"  #: final (SSRF guard, size, content type)


@dataclass(frozen=True)
class DownloadFailed(Observation):
    source: ClassVar[str] = "downloader"
    name: ClassVar[str] = "download_failed"
    artifact: str
    reason: DownloadFailure
    message: str


# --- clock-driven ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlinePassed(Observation):
    source: ClassVar[str] = "deadline"
    name: ClassVar[str] = "deadline_passed"


@dataclass(frozen=True)
class UncertainGraceOver(Observation):
    """An `uncertain` job waited its grace period for a callback; the policy decides now."""

    source: ClassVar[str] = "deadline"
    name: ClassVar[str] = "uncertain_grace_over"


# --- pipelines (the releaser) ----------------------------------------------------------------


@dataclass(frozen=True)
class ParentsCompleted(Observation):
    """Every parent of a `waiting` job completed; ``params`` are its references resolved."""

    source: ClassVar[str] = "pipeline"
    name: ClassVar[str] = "parents_completed"
    params: dict[str, Any]


@dataclass(frozen=True)
class ChildrenRecorded(Observation):
    """A for_each job's children (one per item) are recorded."""

    source: ClassVar[str] = "pipeline"
    name: ClassVar[str] = "children_recorded"
    children: tuple[str, ...]


@dataclass(frozen=True)
class ChildrenCompleted(Observation):
    """Every child of a for_each job completed."""

    source: ClassVar[str] = "pipeline"
    name: ClassVar[str] = "children_completed"


@dataclass(frozen=True)
class DependencyFailed(Observation):
    """A parent (or a for_each job's child) did not complete, or a reference could not be
    resolved from what it produced. ``code``: orchestrator.pipelines.PARENT_FAILED or
    BAD_REFERENCE."""

    source: ClassVar[str] = "pipeline"
    name: ClassVar[str] = "dependency_failed"
    code: str
    message: str


@dataclass(frozen=True)
class DependencyRetried(Observation):
    """The job that failed this one's pipeline was retried: wait for it again."""

    source: ClassVar[str] = "pipeline"
    name: ClassVar[str] = "dependency_retried"
    parent: str


# --- operator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelRequested(Observation):
    source: ClassVar[str] = "operator"
    name: ClassVar[str] = "cancel_requested"


@dataclass(frozen=True)
class RetryRequested(Observation):
    source: ClassVar[str] = "operator"
    name: ClassVar[str] = "retry_requested"


class Resolution(StrEnum):
    RESUBMIT = "resubmit"
    FAIL = "fail"
    TASK_ID = "task_id"


@dataclass(frozen=True)
class ResolveRequested(Observation):
    source: ClassVar[str] = "operator"
    name: ClassVar[str] = "resolve_requested"
    action: Resolution
    task_id: str | None = None
