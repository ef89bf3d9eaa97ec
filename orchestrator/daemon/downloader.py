"""The downloader: streams every artifact of succeeded jobs to disk and verifies it.

Files go to ``artifacts_dir/<job key>/<name>`` (the name derived from sanitised upstream ids
only) through the SSRF-safe :class:`orchestrator.downloads.Fetcher`: temp file, sha256 while
writing, fsync, atomic rename. An expired URL (403/404) asks the poller for a fresh one.
"""

from __future__ import annotations

import functools
import glob
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from orchestrator import faultpoints
from orchestrator.daemon.inflight import InFlight
from orchestrator.domain import Artifact, ArtifactState, Job
from orchestrator.downloads import Fetcher
from orchestrator.exceptions import DownloadExpired, DownloadRefused, DownloadTransient
from orchestrator.logs import get_logger
from orchestrator.metrics import METRICS
from orchestrator.observations import ArtifactStored, DownloadFailed, DownloadFailure
from orchestrator.reconciler import Reconciler
from orchestrator.states import JobState
from orchestrator.stores.base import DOWNLOAD, Store

log = get_logger("orchestrator.downloader")

ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "audio": ("audio/*", "application/octet-stream"),
    "image": ("image/*", "application/octet-stream"),
    "video": ("video/*", "application/octet-stream"),
    #: a text result the upstream gave inline (lyrics): a data: URL the orchestrator made
    "text": ("text/plain",),
}


class Downloader:
    def __init__(
        self,
        store: Store,
        reconciler: Reconciler,
        fetcher: Fetcher,
        *,
        artifacts_dir: Path,
        owner: str,
        executor: ThreadPoolExecutor,
        concurrency: int,
        lease_s: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.fetcher = fetcher
        self.artifacts_dir = artifacts_dir
        self.owner = owner
        self.executor = executor
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.clock = clock
        self.stop = stop
        self._inflight = InFlight(executor, "download")

    def tick(self) -> int:
        if self.stop.is_set():
            return 0
        room = self.concurrency * 2 - self._inflight.count()
        if room <= 0:
            return 0
        jobs = self.store.claim(DOWNLOAD, self.owner, self.clock(), self.lease_s, room)
        for job in jobs:
            # already in flight: a download_soon of ours has it (same owner, same lease)
            self._inflight.start(job.id, functools.partial(self._run, job))
        return len(jobs)

    def download_soon(self, job_id: int) -> None:
        """A job just succeeded: start its downloads now rather than at the next tick."""
        if not self.stop.is_set():
            self._inflight.start(job_id, functools.partial(self._claim_and_run, job_id))

    def _claim_and_run(self, job_id: int) -> None:
        job = self.store.claim_job(job_id, self.owner, self.clock(), self.lease_s)
        if job is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            self.download_job(job)
        except Exception:
            self.store.release(job.id, self.owner)
            raise

    def download_job(self, job: Job) -> Job:
        """Fetch every due artifact of one claimed job, one after the other."""
        now = self.clock()
        due = [
            a
            for a in job.artifacts
            if a.state == ArtifactState.PENDING
            and a.next_attempt_at is not None
            and a.next_attempt_at <= now
        ]
        for index, artifact in enumerate(due):
            if self.stop.is_set() or job.state != JobState.SUCCEEDED:
                break
            if index:
                # renew the lease before each further file (the claim covers one file's time)
                renewed = self.store.claim_job(job.id, self.owner, self.clock(), self.lease_s)
                if renewed is None:
                    return job  # another worker holds it now: stop, it carries on
                job = renewed
            job = self._download(job, artifact)
        self.store.release(job.id, self.owner)
        return job

    def _download(self, job: Job, artifact: Artifact) -> Job:
        dest = self.artifacts_dir / job.key / artifact.name
        _remove_stale_parts(dest)
        faultpoints.reach("download.before_fetch")
        heartbeat = _Heartbeat(self, job.id)
        try:
            result = self.fetcher.fetch(
                artifact.url,
                dest,
                allowed_types=ALLOWED_TYPES[artifact.media],
                on_chunk=heartbeat.beat,
                inline=artifact.media == "text",
            )
        except _LeaseLost:
            log.info("download_lease_lost", key=job.key, artifact=artifact.name)
            return job  # another worker owns the job now and carries on
        except DownloadExpired as exc:
            reason, message = DownloadFailure.EXPIRED, str(exc)
        except DownloadRefused as exc:
            reason, message = DownloadFailure.REFUSED, str(exc)
        except DownloadTransient as exc:
            reason, message = DownloadFailure.TRANSIENT, str(exc)
        else:
            faultpoints.reach("download.after_rename")
            log.info("artifact_stored", key=job.key, artifact=artifact.name, bytes=result.bytes)
            METRICS.download_bytes.inc(result.bytes)
            observed = ArtifactStored(artifact.name, str(result.path), result.bytes, result.sha256)
            return self.reconciler.observe(job, observed, self.clock()).job
        log.info(
            "download_failed",
            key=job.key,
            artifact=artifact.name,
            reason=reason.value,
            error=message,
        )
        failed = DownloadFailed(artifact.name, reason, message)
        return self.reconciler.observe(job, failed, self.clock()).job


def _remove_stale_parts(dest: Path) -> None:
    """Temp files a killed worker left beside ``dest``: we hold the job's lease, so they are
    nobody's (the fetcher deletes its own on any error it survives)."""
    pattern = glob.escape(str(dest.parent / f".{dest.name}.")) + "*.part"
    for stale in glob.glob(pattern):
        with suppress(OSError):
            Path(stale).unlink()
            log.info("stale_temp_removed", path=stale)


class _LeaseLost(Exception):
    """Another worker took the job over while we were downloading."""


class _Heartbeat:
    """Renews the download lease every third of its length while bytes keep arriving."""

    def __init__(self, downloader: Downloader, job_id: int) -> None:
        self.downloader = downloader
        self.job_id = job_id
        self.every = downloader.lease_s / 3
        self.last = time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        d = self.downloader
        if d.store.claim_job(self.job_id, d.owner, d.clock(), d.lease_s) is None:
            raise _LeaseLost
