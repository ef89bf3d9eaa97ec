"""A real callback app over a real SQLite store under tmp_path, driven by Flask's test client.

The provider's HTTP client has a transport that fails the test if it is ever used: the
callback endpoint must never reach out to anything.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from orchestrator.daemon.breaker import CircuitBreaker
from orchestrator.daemon.poller import Poller
from orchestrator.daemon.ratelimit import TokenBucket
from orchestrator.domain import Event, Job
from orchestrator.observations import SubmitAccepted, SubmitStarted, UpstreamReport
from orchestrator.providers import make_provider
from orchestrator.providers.base import Provider
from orchestrator.reconciler import Reconciler
from orchestrator.service import JobService
from orchestrator.stores import open_store
from orchestrator.stores.base import SUBMIT, Store
from orchestrator.tokens import hash_token
from orchestrator.web.app import WebContext, create_app
from orchestrator.web.callback_auth import CallbackAuth

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "calm piano"}
TASK = "task-0001"


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the callback endpoint contacted {request.url.host}")


class FixedUpstream:
    """record-info as a fixed answer (``truth``); callbacks parsed by the real provider."""

    def __init__(self, real: Provider) -> None:
        self.real = real
        self.truth: UpstreamReport | None = None
        self.profile = real.profile

    def parse_callback(self, kind: str, body: Any) -> UpstreamReport:
        return self.real.parse_callback(kind, body)

    def fetch(self, kind: str, task_id: str) -> UpstreamReport:
        assert self.truth is not None, "the test did not say what record-info answers"
        return self.truth


@dataclass
class Rig:
    store: Store
    reconciler: Reconciler
    ctx: WebContext
    client: FlaskClient
    upstream: FixedUpstream
    now: list[datetime] = field(default_factory=lambda: [T0])
    woken: list[int] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now[0]

    def new_job(
        self, key: str, kind: str = "generate_music", task_id: str | None = TASK
    ) -> tuple[Job, str]:
        """A job submitted upstream (pending, with ``task_id``), and its live callback token."""
        params = SONG if kind == "generate_music" else {"taskId": "t", "audioId": "a"}
        service = JobService(
            self.store, provider="sunoapi", reconciler=self.reconciler, clock=self.clock
        )
        job, _ = service.submit(kind, params, key)
        claimed = [
            j for j in self.store.claim(SUBMIT, "test", self.clock(), 60, 100) if j.id == job.id
        ]
        token = secrets.token_urlsafe(32)
        job = self.reconciler.observe(
            claimed[0], SubmitStarted(token_hash=hash_token(token)), self.clock()
        ).job
        if task_id is not None:
            job = self.reconciler.observe(
                job, SubmitAccepted(task_id), self.clock(), release_owner="test"
            ).job
        else:
            self.store.release(job.id, "test")
        return job, token

    def post(
        self,
        token: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        remote: str = "127.0.0.1",
    ) -> Any:
        import json

        raw = data if data is not None else json.dumps(body).encode()
        return self.client.post(
            f"/callbacks/{token}",
            data=raw,
            content_type=content_type,
            headers=headers or {},
            environ_base={"REMOTE_ADDR": remote},
        )

    def job(self, job_id: int) -> Job:
        return self.store.get_job(job_id)

    def events(self, job_id: int) -> list[Event]:
        return self.store.events(job_id)

    def poller(self) -> Poller:
        return Poller(
            self.store,
            self.reconciler,
            self.upstream,  # type: ignore[arg-type]
            owner="poller",
            executor=ThreadPoolExecutor(1),
            concurrency=1,
            bucket=TokenBucket(0),
            breaker=CircuitBreaker("test"),
            lease_s=60,
            clock=self.clock,
            stop=threading.Event(),
        )

    def poll(self, job_id: int, report: UpstreamReport) -> Job:
        """Claim the job for polling and run one poll whose record-info says ``report``."""
        self.upstream.truth = report
        self.now[0] += timedelta(seconds=1)
        poller = self.poller()
        job = self.store.claim_job(job_id, "poller", self.clock(), 60)
        assert job is not None
        poller._poll(job)
        poller.executor.shutdown()
        return self.job(job_id)


def callback(
    kind: str = "complete",
    task_id: str = TASK,
    tracks: list[dict[str, Any]] | None = None,
    code: int = 200,
) -> dict[str, Any]:
    data: dict[str, Any] = {"callbackType": kind, "task_id": task_id, "data": tracks or []}
    return {"code": code, "msg": "success" if code == 200 else "failed", "data": data}


def track(ident: str, host: str = "cdn.example.com", **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "audio_url": f"https://{host}/{ident}.mp3?sig=abc",
        "image_url": f"https://{host}/{ident}.jpg",
        "title": "t",
        "duration": 12.5,
        **extra,
    }


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs when there is one (the store fsyncs every commit), else tmp_path."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="orchestrator-fuzz-") as name:
        yield Path(name)


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Any]:
    stores: list[Store] = []

    def make(
        mode: str = "verify",
        auth: CallbackAuth | None = None,
        max_body_bytes: int = 1024 * 1024,
        directory: Path | None = None,
    ) -> Rig:
        where = directory or tmp_path
        store = open_store(f"sqlite:///{where}/orchestrator-{len(stores)}.db")
        stores.append(store)
        woken: list[int] = []
        reconciler = Reconciler(store, on_wake=woken.append)
        real = make_provider(
            "sunoapi",
            httpx.Client(transport=httpx.MockTransport(_no_network)),
            base_url="http://127.0.0.1:9",
            api_key="k" * 16,
        )
        upstream = FixedUpstream(real)
        now = [T0]
        service = JobService(store, provider="sunoapi", reconciler=reconciler, clock=lambda: now[0])
        ctx = WebContext(
            store=store,
            reconciler=reconciler,
            provider=upstream,  # type: ignore[arg-type]
            service=service,
            clock=lambda: now[0],
            mode=mode,
            max_body_bytes=max_body_bytes,
            auth=auth or CallbackAuth(),
        )
        app = create_app(ctx)
        return Rig(store, reconciler, ctx, app.test_client(), upstream, now=now, woken=woken)

    yield make
    for store in stores:
        store.close()
