"""`orchestrator demo`: the sandbox and the daemon on free loopback ports, a small real pipeline.

A song is generated; then a section of it is replaced and a music video is made from it, both
from the song's real taskId and audio id. Progress is printed as jobs move; a summary table
and the paths of the downloaded files end it. Everything stays under ``--dir``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.cli.render import progress_line
from orchestrator.config import (
    CallbackSettings,
    DaemonSettings,
    LoggingSettings,
    PollingSettings,
    ProviderSettings,
    Settings,
    StorageSettings,
)
from orchestrator.daemon.runner import Daemon
from orchestrator.domain import Job
from orchestrator.logs import LogFormat, configure
from orchestrator.providers.profiles import ProfileName
from orchestrator.states import FINISHED, JobState


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(base: Path, upstream_url: str, callback_port: int) -> Settings:
    return Settings(
        storage=StorageSettings(
            url=f"sqlite:///{base / 'orchestrator.db'}", artifacts_dir=base / "artifacts"
        ),
        provider=ProviderSettings(
            profile=ProfileName.SUNOAPI,
            base_url=upstream_url,
            api_key_env="ORCHESTRATOR_DEMO_API_KEY",
        ),
        polling=PollingSettings(interval_s=5.0, deadline_s=600.0, tick_s=0.2),
        callbacks=CallbackSettings(
            listen=f"127.0.0.1:{callback_port}", public_url=f"http://127.0.0.1:{callback_port}"
        ),
        daemon=DaemonSettings(lease_s=30.0, shutdown_grace_s=5.0),
        logging=LoggingSettings(level="info", format=LogFormat.JSON),
        base_dir=base,
    )


def run_demo(args: argparse.Namespace) -> int:
    from orchestrator.sandbox.config import SandboxConfig
    from orchestrator.sandbox.faults import parse_faults
    from orchestrator.sandbox.server import SandboxServer

    console = Console(highlight=False)
    root = (args.dir or Path("var/demo")).resolve()
    base = root / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    log_path = base / "daemon.log"
    log_file = log_path.open("w", encoding="utf-8")
    configure("info", "json", stream=log_file)

    faults = parse_faults("drop=1.0") if args.no_callbacks else parse_faults("")
    sandbox = SandboxServer(
        SandboxConfig(port=0, time_scale=args.time_scale, faults=faults, seed=7)
    )
    sandbox.start()
    daemon = Daemon(demo_settings(base, sandbox.url, _free_port()))
    started = time.monotonic()
    try:
        daemon.start()
        assert daemon.parts is not None
        service = daemon.parts.service
        console.print(
            f"[bold]orchestrator demo[/]  sandbox {sandbox.url}  "
            f"callbacks {'dropped' if args.no_callbacks else 'on'}  files under {base}"
        )
        song, _ = service.submit(
            "generate_music",
            {
                "customMode": False,
                "instrumental": False,
                "model": "V4_5",
                "prompt": "a calm piano piece with soft rain in the background",
            },
            "demo-song",
        )
        song = _follow(service, [song.key], console)[0]
        if song.state != JobState.COMPLETED or not song.result or not song.result.get("tracks"):
            console.print(f"[red]the song did not complete: {song.state.value}[/]")
            return 1
        track = song.result["tracks"][0]
        section, _ = service.submit(
            "replace_section",
            {
                "taskId": song.task_id,
                "audioId": track["id"],
                "prompt": "a gentle cello takes over the melody",
                "tags": "piano, cello, calm",
                "title": "Rain (cello bridge)",
                "infillStartS": 10.0,
                "infillEndS": 20.0,
                "fullLyrics": "[Verse]\nRain on the window, keys in the dark\n"
                "[Bridge]\nA cello answers, soft and slow\n",
            },
            "demo-section",
        )
        video, _ = service.submit(
            "music_video",
            {"taskId": song.task_id, "audioId": track["id"], "author": "orchestrator demo"},
            "demo-video",
        )
        _follow(service, [section.key, video.key], console)
        jobs = [service.get(k) for k in ("demo-song", "demo-section", "demo-video")]
    finally:
        daemon.stop()
        ledger = sandbox.ledger()
        sandbox.stop()
        log_file.close()
    _summary(console, jobs, ledger, time.monotonic() - started, log_path)
    return 0 if all(j.state == JobState.COMPLETED for j in jobs) else 1


def _follow(
    service: object, keys: list[str], console: Console, timeout_s: float = 300.0
) -> list[Job]:
    from orchestrator.service import JobService

    assert isinstance(service, JobService)
    seen: dict[str, tuple[object, ...]] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [service.get(k) for k in keys]
        for job in jobs:
            mark = (job.state, job.upstream_status, sum(a.bytes is not None for a in job.artifacts))
            if seen.get(job.key) != mark:
                seen[job.key] = mark
                progress_line(job, sys.stdout)
        if all(j.state in FINISHED for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


def _summary(
    console: Console, jobs: list[Job], ledger: dict[str, object], took: float, log_path: Path
) -> None:
    table = Table(title=f"demo finished in {took:.1f}s")
    for column in ("job", "kind", "state", "polls", "callbacks", "submits", "files"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.key,
            job.kind,
            job.state.value,
            str(job.polls),
            str(job.callbacks),
            str(job.submit_attempts),
            str(sum(1 for a in job.artifacts if a.path)),
        )
    console.print(table)
    submits = ledger.get("submits")
    console.print(
        f"upstream saw {len(submits) if isinstance(submits, list) else '?'} submits "
        f"for {len(jobs)} jobs (never more: nothing is paid for twice)"
    )
    for job in jobs:
        for artifact in job.artifacts:
            if artifact.path:
                digest = (artifact.sha256 or "")[:12]
                console.print(f"  {artifact.path}  ({artifact.bytes} bytes, sha256 {digest}…)")
    console.print(f"daemon log: {log_path}")
