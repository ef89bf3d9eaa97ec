"""The daemon's loops one at a time, on the in-memory store with a moved clock.

Submitter, poller, sweeper and downloader are otherwise covered end to end (acceptance, over
the sandbox); here each is driven directly: what it claims, what it sends, what it records,
what it gives back. No network, no database, no sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.daemon.breaker import CircuitBreaker
from orchestrator.daemon.downloader import Downloader
from orchestrator.daemon.poller import Poller
from orchestrator.daemon.ratelimit import SlidingWindow, TokenBucket
from orchestrator.daemon.submitter import Submitter
from orchestrator.daemon.sweeper import Sweeper
from orchestrator.domain import Job, NewJob
from orchestrator.exceptions import (
    DownloadExpired,
    StaleJob,
    UpstreamAmbiguous,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from orchestrator.machine import Policy, UncertainPolicy
from orchestrator.observations import SubmitAccepted, Track, UpstreamReport, UpstreamStatus
from orchestrator.reconciler import Reconciler
from orchestrator.states import JobState
from orchestrator.stores.base import POLL, SUBMIT
from orchestrator.stores.memory import MemoryStore

S = JobState
U = UpstreamStatus
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": "rain"}
POLICY = Policy(backoff_jitter=0.0)


class Inline:
    """An executor that runs the work at once on the caller's thread (deterministic)."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


@dataclass
class FakeUpstream:
    """A provider: submits answer from ``answers`` (a task id or an exception), polls from
    ``reports`` (task id -> report, or an exception)."""

    profile: str = "sunoapi"
    answers: list[Any] = field(default_factory=list)
    reports: dict[str, Any] = field(default_factory=dict)
    submitted: list[tuple[str, str]] = field(default_factory=list)  #: (kind, callback URL)
    fetched: list[str] = field(default_factory=list)

    def submit(self, kind: str, params: Any, callback_url: str) -> str:
        self.submitted.append((kind, callback_url))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    def fetch(self, kind: str, task_id: str) -> UpstreamReport:
        self.fetched.append(task_id)
        answer = self.reports[task_id]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def parse_callback(self, kind: str, body: Any) -> UpstreamReport:  # pragma: no cover
        raise AssertionError("no callbacks here")


@dataclass
class Rig:
    store: MemoryStore
    upstream: FakeUpstream
    now: list[datetime]
    policy: Policy = POLICY

    def clock(self) -> datetime:
        return self.now[0]

    def later(self, seconds: float) -> None:
        self.now[0] += timedelta(seconds=seconds)

    @property
    def reconciler(self) -> Reconciler:
        return Reconciler(self.store, self.policy)

    def job(self, key: str = "j") -> Job:
        return self.store.get_job_by_key(key)

    def queue(self, key: str = "j") -> Job:
        job, _ = self.store.create_job(NewJob(key, "generate_music", SONG, "sunoapi"), self.clock())
        return job

    def submitter(
        self, breaker: CircuitBreaker | None = None, limit: int = 100, owner: str = "submitter"
    ) -> Submitter:
        return Submitter(
            self.store,
            self.reconciler,
            self.upstream,  # type: ignore[arg-type]
            owner=owner,
            public_url="http://127.0.0.1:8787",
            limiter=SlidingWindow(limit, 10.0),
            breaker=breaker or CircuitBreaker("test"),
            lease_s=60,
            clock=self.clock,
            stop=threading.Event(),
        )

    def poller(self, breaker: CircuitBreaker | None = None) -> Poller:
        return Poller(
            self.store,
            self.reconciler,
            self.upstream,  # type: ignore[arg-type]
            owner="poller",
            executor=Inline(),  # type: ignore[arg-type]
            concurrency=4,
            bucket=TokenBucket(0),
            breaker=breaker or CircuitBreaker("test"),
            lease_s=60,
            clock=self.clock,
            stop=threading.Event(),
        )

    def pending(self, key: str = "j", task_id: str = "t1") -> Job:
        """A job the upstream accepted as ``task_id``."""
        self.queue(key)
        self.upstream.answers.append(task_id)
        self.submitter().tick()
        return self.job(key)


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield Rig(MemoryStore(), FakeUpstream(), [T0])


def success(task_id: str) -> UpstreamReport:
    tracks = tuple(Track(f"{task_id}-{n}", audio_url=f"https://cdn.test/{n}.mp3") for n in (1, 2))
    return UpstreamReport(U.SUCCESS, task_id, tracks=tracks, raw_status="SUCCESS")


# --- submitter -------------------------------------------------------------------------------


def test_the_submitter_records_the_token_before_sending_and_the_task_after(rig: Rig) -> None:
    rig.queue()
    seen: list[Any] = []

    def answer_and_look(kind: str, params: Any, url: str) -> str:
        token_hash = url.rsplit("/", 1)[1]
        from orchestrator.tokens import hash_token

        seen.append(rig.store.find_by_token(hash_token(token_hash)))  # recorded already
        return "task-1"

    rig.upstream.submit = answer_and_look  # type: ignore[method-assign]
    assert rig.submitter().tick() == 1
    assert seen[0] is not None and seen[0].job.state == S.SUBMITTING and seen[0].attempt == 1
    job = rig.job()
    assert (job.state, job.task_id, job.attempt) == (S.PENDING, "task-1", 1)
    assert rig.store.lease_of(job.id) is None  # released with the answer


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (UpstreamUnavailable("HTTP 500"), S.QUEUED),
        (UpstreamRateLimited("430", retry_after=12.0), S.QUEUED),
        (UpstreamRejected("code 400"), S.FAILED),
        (UpstreamAmbiguous("read timeout"), S.UNCERTAIN),
        (RuntimeError("a bug in the provider"), S.UNCERTAIN),  # maybe sent: maybe paid
    ],
    ids=["5xx", "rate-limited", "rejected", "ambiguous", "unexpected"],
)
def test_each_kind_of_submit_answer_lands_where_it_must(
    rig: Rig, error: Exception, state: JobState
) -> None:
    rig.queue()
    rig.upstream.answers.append(error)
    rig.submitter().tick()
    job = rig.job()
    assert job.state == state
    assert rig.store.lease_of(job.id) is None


def test_a_retryable_error_waits_its_backoff_before_the_next_attempt(rig: Rig) -> None:
    rig.queue()
    rig.upstream.answers += [UpstreamUnavailable("HTTP 500"), "task-2"]
    submitter = rig.submitter()
    submitter.tick()
    assert submitter.tick() == 0  # not before the backoff (2 s for the first retry)
    rig.later(2.0)
    assert submitter.tick() == 1
    assert rig.job().task_id == "task-2" and len(rig.upstream.submitted) == 2


def test_the_submitter_sends_no_more_than_the_rate_limit_allows(rig: Rig) -> None:
    for n in range(5):
        rig.queue(f"j{n}")
        rig.upstream.answers.append(f"task-{n}")
    assert rig.submitter(limit=3).tick() == 3
    assert len(rig.store.claim(SUBMIT, "other", rig.clock(), 60, 10)) == 2  # left, unleased


def test_an_open_breaker_sends_nothing_and_leaves_the_queue_alone(rig: Rig) -> None:
    rig.queue()
    breaker = CircuitBreaker("test", threshold=1, cooldown_s=30, clock=lambda: 0.0)
    breaker.failure()
    assert rig.submitter(breaker).tick() == 0
    assert rig.upstream.submitted == [] and rig.job().state == S.QUEUED


# --- poller ----------------------------------------------------------------------------------


def test_the_poller_polls_due_jobs_only_and_schedules_the_next_poll(rig: Rig) -> None:
    job = rig.pending()
    rig.upstream.reports["t1"] = UpstreamReport(U.TEXT_SUCCESS, "t1", raw_status="TEXT_SUCCESS")
    poller = rig.poller()
    assert poller.tick() == 0  # first poll one interval after the accept
    assert job.next_poll_at is not None
    rig.now[0] = job.next_poll_at
    assert poller.tick() == 1
    after = rig.job()
    assert after.state == S.RUNNING and after.polls == 1
    assert after.next_poll_at is not None and after.next_poll_at > rig.clock()
    assert rig.store.lease_of(after.id) is None


def test_a_successful_poll_hands_the_job_to_the_downloads(rig: Rig) -> None:
    job = rig.pending()
    rig.upstream.reports["t1"] = success("t1")
    assert job.next_poll_at is not None
    rig.now[0] = job.next_poll_at
    rig.poller().tick()
    after = rig.job()
    assert after.state == S.SUCCEEDED and after.next_poll_at is None
    assert [a.name for a in after.artifacts] == ["1-track.mp3", "2-track.mp3"]


def test_a_failing_poll_backs_off_and_an_outage_counts_for_the_breaker(rig: Rig) -> None:
    job = rig.pending()
    rig.upstream.reports["t1"] = UpstreamUnavailable("HTTP 503")
    breaker = CircuitBreaker("test", threshold=2, cooldown_s=30)
    assert job.next_poll_at is not None
    rig.now[0] = job.next_poll_at
    rig.poller(breaker).tick()
    after = rig.job()
    assert after.poll_failures == 1 and after.next_poll_at == rig.clock() + timedelta(seconds=5)
    rig.now[0] = after.next_poll_at
    rig.poller(breaker).tick()
    assert breaker.is_open


def test_poll_soon_polls_a_woken_job_at_once(rig: Rig) -> None:
    job = rig.pending()
    rig.upstream.reports["t1"] = success("t1")
    rig.poller().poll_soon(job.id)  # a callback said so: no waiting for the next poll time
    assert rig.job().state == S.SUCCEEDED and rig.upstream.fetched == ["t1"]


def test_a_wake_up_for_a_job_another_daemon_holds_is_relayed_to_them(rig: Rig) -> None:
    job = rig.pending()
    assert rig.store.claim_job(job.id, "other-daemon", rig.clock(), 60) is not None
    relayed: list[int] = []
    poller = rig.poller()
    poller.relay = relayed.append
    poller.poll_soon(job.id)  # the callback reached us; the lease is theirs
    assert relayed == [job.id] and rig.upstream.fetched == []
    poller.poll_soon(job.id, relayed=True)  # one heard from another daemon is not sent back
    assert relayed == [job.id]
    rig.store.release(job.id, "other-daemon")
    rig.upstream.reports["t1"] = success("t1")
    poller.poll_soon(job.id, relayed=True)  # the holder: it polls
    assert rig.job().state == S.SUCCEEDED and relayed == [job.id]


# --- sweeper ---------------------------------------------------------------------------------


def sweeper(rig: Rig, policy: Policy) -> Sweeper:
    return Sweeper(
        rig.store,
        Reconciler(rig.store, policy),
        policy,
        owner="sweeper",
        lease_s=60,
        clock=rig.clock,
        stop=threading.Event(),
    )


def test_the_sweeper_times_out_jobs_past_their_deadline(rig: Rig) -> None:
    job = rig.pending()
    assert job.deadline_at is not None
    rig.now[0] = job.deadline_at - timedelta(seconds=1)
    assert sweeper(rig, POLICY).tick() == 0
    rig.now[0] = job.deadline_at
    assert sweeper(rig, POLICY).tick() == 1
    assert rig.job().state == S.TIMED_OUT


def test_a_submit_whose_worker_died_becomes_uncertain_after_its_lease(rig: Rig) -> None:
    rig.queue()
    [claimed] = rig.store.claim(SUBMIT, "dead-worker", rig.clock(), 60, 1)
    from orchestrator.observations import SubmitStarted

    rig.reconciler.observe(claimed, SubmitStarted(token_hash="h"), rig.clock())
    assert sweeper(rig, POLICY).tick() == 0  # its lease still runs
    rig.later(60)
    assert sweeper(rig, POLICY).tick() == 1
    assert rig.job().state == S.UNCERTAIN


@pytest.mark.parametrize(
    ("policy", "state"),
    [(UncertainPolicy.HOLD, S.UNCERTAIN), (UncertainPolicy.RESUBMIT, S.QUEUED),
     (UncertainPolicy.FAIL, S.FAILED)],
)  # fmt: skip
def test_the_uncertain_policy_decides_after_the_grace_period(
    rig: Rig, policy: UncertainPolicy, state: JobState
) -> None:
    rig.queue()
    rig.upstream.answers.append(UpstreamAmbiguous("reset"))
    rig.submitter().tick()
    chosen = Policy(uncertain_policy=policy, uncertain_grace_s=100)
    rig.later(99)
    sweeper(rig, chosen).tick()
    assert rig.job().state == S.UNCERTAIN
    rig.later(1)
    sweeper(rig, chosen).tick()
    assert rig.job().state == state


# --- downloader ------------------------------------------------------------------------------


@dataclass
class FakeFetcher:
    """Writes ``body`` to the destination, or raises the next queued error."""

    errors: list[Exception] = field(default_factory=list)
    body: bytes = b"ID3 fake mp3"

    def fetch(
        self,
        url: str,
        dest: Path,
        *,
        allowed_types: Any,
        on_chunk: Any = None,
        inline: bool = False,
    ) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        import hashlib

        from orchestrator.downloads.fetcher import FetchResult

        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.body)
        digest = hashlib.sha256(self.body).hexdigest()
        return FetchResult(dest, len(self.body), digest, "audio/mpeg", url)


def downloader(rig: Rig, fetcher: FakeFetcher, tmp_path: Path) -> Downloader:
    return Downloader(
        rig.store,
        rig.reconciler,
        fetcher,  # type: ignore[arg-type]
        artifacts_dir=tmp_path,
        owner="downloader",
        executor=Inline(),  # type: ignore[arg-type]
        concurrency=2,
        lease_s=60,
        clock=rig.clock,
        stop=threading.Event(),
    )


def succeeded(rig: Rig) -> Job:
    job = rig.pending()
    rig.upstream.reports["t1"] = success("t1")
    rig.poller().poll_soon(job.id)
    return rig.job()


def test_the_downloader_stores_every_file_and_completes_the_job(rig: Rig, tmp_path: Path) -> None:
    succeeded(rig)
    assert downloader(rig, FakeFetcher(), tmp_path).tick() == 1
    job = rig.job()
    assert job.state == S.COMPLETED
    assert all(Path(a.path or "").read_bytes() == b"ID3 fake mp3" for a in job.artifacts)
    assert {a.sha256 for a in job.artifacts} != {None}
    assert rig.store.lease_of(job.id) is None


def test_an_expired_url_asks_for_a_fresh_poll_instead_of_retrying_blindly(
    rig: Rig, tmp_path: Path
) -> None:
    succeeded(rig)
    downloader(rig, FakeFetcher([DownloadExpired("HTTP 403")]), tmp_path).tick()
    job = rig.job()
    assert job.state == S.SUCCEEDED and job.next_poll_at == rig.clock()
    assert len(rig.store.claim(POLL, "poller", rig.clock(), 60, 5)) == 1


# --- the reconciler's retry on a lost compare-and-set ----------------------------------------


def test_a_lost_compare_and_set_is_decided_again_on_the_fresh_job(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else changes the job between our read and our write: the reconciler re-reads
    and folds the observation into what the job has become, it never overwrites it."""
    job = rig.queue()
    [claimed] = rig.store.claim(SUBMIT, "w", rig.clock(), 60, 1)
    reconciler = rig.reconciler
    from orchestrator.observations import CancelRequested, SubmitStarted

    started = reconciler.observe(claimed, SubmitStarted(token_hash="h"), rig.clock()).job
    real_apply = rig.store.apply
    raced = [False]

    def cancel_first(current: Job, *args: Any, **kwargs: Any) -> Job:
        if not raced[0]:  # the operator's cancel wins the race, just before our write
            raced[0] = True
            Reconciler(rig.store, POLICY).observe(current, CancelRequested(), rig.clock())
            with pytest.raises(StaleJob):
                real_apply(current, *args, **kwargs)
            raise StaleJob("lost the race")
        return real_apply(current, *args, **kwargs)

    monkeypatch.setattr(rig.store, "apply", cancel_first)
    outcome = reconciler.observe(started, SubmitAccepted("task-9", attempt=1), rig.clock())
    assert raced[0]
    # decided again on the cancelled job: the taskId is kept for the record, the state stays
    assert (outcome.job.state, outcome.job.task_id) == (S.CANCELLED, "task-9")
    types = [e.type for e in rig.store.events(job.id)]
    assert types == ["created", "submit_started", "cancel_requested", "submit_accepted"]


def test_a_5xx_answer_is_retried_only_by_the_process_that_got_it(rig: Rig) -> None:
    # the upstream may have created the task anyway; its callback goes to the process that
    # sent the attempt, which holds the job until the retry is due
    a, b = rig.submitter(owner="node-a"), rig.submitter(owner="node-b")
    rig.queue()
    rig.upstream.answers = [UpstreamUnavailable("HTTP 500", http_status=500), "t-2"]
    assert a.tick() == 1
    job = rig.job()
    assert job.state == S.QUEUED and job.error is not None and job.error.watcher == "node-a"
    rig.later(3)  # the retry is due
    assert b.tick() == 0 and len(rig.upstream.submitted) == 1  # node-a holds it
    assert a.tick() == 1
    assert rig.job().state == S.PENDING and rig.job().task_id == "t-2"


def test_a_5xx_answer_whose_process_stopped_makes_the_job_uncertain_not_resent(rig: Rig) -> None:
    a, b = rig.submitter(owner="node-a"), rig.submitter(owner="node-b")
    rig.queue()
    rig.upstream.answers = [UpstreamUnavailable("HTTP 500", http_status=500)]
    assert a.tick() == 1
    del a  # node-a dies: its hold lapses after the retry's due time plus lease_s
    rig.later(3)
    assert b.tick() == 0 and rig.job().state == S.QUEUED
    rig.later(61)
    assert b.tick() == 0
    job = rig.job()
    assert job.state == S.UNCERTAIN and job.error is not None and "node-a" in job.error.message
    assert len(rig.upstream.submitted) == 1  # never sent twice


def test_a_request_that_never_arrived_may_be_retried_by_any_process(rig: Rig) -> None:
    a, b = rig.submitter(owner="node-a"), rig.submitter(owner="node-b")
    rig.queue()
    rig.upstream.answers = [UpstreamUnavailable("connection refused"), "t-2"]
    assert a.tick() == 1
    assert rig.job().error is not None and rig.job().error.watcher is None  # type: ignore[union-attr]
    rig.later(3)
    assert b.tick() == 1 and rig.job().task_id == "t-2"
