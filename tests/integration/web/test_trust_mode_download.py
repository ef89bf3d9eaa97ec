"""Trust mode applies a callback's URLs directly: the downloader is then the last line.

A trusted callback pointing at private, link-local or loopback-disguised addresses must fail
the job at stage ``download`` (refused) without a single connection. A guard transport fails
the test if anything is contacted; names resolve through a stub resolver.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.daemon.downloader import Downloader
from orchestrator.downloads import AddressPolicy, Fetcher
from orchestrator.downloads.resolver import ip_literal
from orchestrator.states import JobState
from tests.integration.web.conftest import callback


class Guard(httpx.BaseTransport):
    def __init__(self) -> None:
        self.contacted: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.contacted.append(str(request.url.host))
        raise AssertionError(f"the downloader contacted {request.url.host}")


class StubResolver:
    TABLE = {
        "metadata.attacker.example": ["169.254.169.254"],
        "intranet.attacker.example": ["10.0.0.1"],
    }

    def resolve(self, host: str, port: int) -> list[str]:
        literal = ip_literal(host)
        return [literal] if literal else self.TABLE.get(host, ["192.168.1.1"])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/a.mp3",
        "http://[fd00::1]/a.mp3",
        "http://metadata.attacker.example/a.mp3",
        "http://intranet.attacker.example/a.mp3",
        "file:///etc/passwd",
    ],
)
def test_a_trusted_callback_with_a_private_url_fails_the_job_at_download(
    make_rig: Any, tmp_path: Path, url: str
) -> None:
    rig = make_rig(mode="trust")
    job, token = rig.new_job("trusted")
    body = callback("complete", tracks=[{"id": "a", "audio_url": url}])
    assert rig.post(token, body).status_code == 200
    job = rig.job(job.id)
    assert job.state == JobState.SUCCEEDED  # trust mode: the callback's data was applied

    guard = Guard()
    fetcher = Fetcher(httpx.Client(transport=guard), AddressPolicy(()), StubResolver())
    with ThreadPoolExecutor(1) as pool:
        downloader = Downloader(
            rig.store,
            rig.reconciler,
            fetcher,
            artifacts_dir=tmp_path / "artifacts",
            owner="downloader",
            executor=pool,
            concurrency=1,
            lease_s=60,
            clock=rig.clock,
            stop=threading.Event(),
        )
        claimed = rig.store.claim_job(job.id, "downloader", rig.clock(), 60)
        assert claimed is not None
        downloader.download_job(claimed)
    final = rig.job(job.id)
    assert guard.contacted == []
    assert final.state == JobState.FAILED
    assert final.error is not None and final.error.stage == "download"
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("*.*"))
