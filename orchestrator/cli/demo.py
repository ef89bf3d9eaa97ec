"""`orchestrator demo`: the sandbox and the daemon on free loopback ports, a real pipeline.

The demo is a config file like any other (:data:`DEMO_CONFIG`, written to ``--dir`` so it
can be read and reused): a song; a music video of each of its tracks; a section of its first
track replaced, and that section converted to WAV. The daemon records the ``[[jobs]]``,
releases each one when its parents completed, with the parents' real taskIds and audio ids
filled in. Progress is printed as jobs move; a summary table and the paths of the downloaded
files end it. Everything stays under ``--dir``.
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
from orchestrator.config import load_settings
from orchestrator.daemon.runner import Daemon
from orchestrator.domain import Job
from orchestrator.logs import configure
from orchestrator.service import JobService, tree_order
from orchestrator.states import FINISHED, JobState

#: the demo's config; @SANDBOX@ and @PORT@ are filled in when it is written
DEMO_CONFIG = """\
# Written by `orchestrator demo`. Run it again with:
#   orchestrator --config @DIR@/config.toml status
[storage]
url = "sqlite:///orchestrator.db"
artifacts_dir = "artifacts"

[provider]
profile = "sunoapi"
base_url = "@SANDBOX@"
api_key_env = "ORCHESTRATOR_DEMO_API_KEY"

[polling]
interval_s = 5.0
deadline_s = 600.0

[callbacks]
listen = "127.0.0.1:@PORT@"
public_url = "http://127.0.0.1:@PORT@"

[daemon]
lease_s = 30.0
shutdown_grace_s = 5.0

[logging]
level = "info"

# 1. a song (two tracks)
[[jobs]]
key = "demo-song"
kind = "generate_music"
[jobs.params]
customMode = false
instrumental = false
model = "V4_5"
prompt = "a calm piano piece with soft rain in the background"

# 2a. a music video of each track: demo-video.0, demo-video.1
[[jobs]]
key = "demo-video"
kind = "music_video"
after = "demo-song"
for_each = "demo-song.tracks"
params = { taskId = "${demo-song.task_id}", audioId = "${item.id}", author = "orchestrator demo" }

# 2b. a section of the first track replaced
[[jobs]]
key = "demo-section"
kind = "replace_section"
after = "demo-song"
[jobs.params]
taskId = "${demo-song.task_id}"
audioId = "${demo-song.tracks[0].id}"
prompt = "a gentle cello takes over the melody"
tags = "piano, cello, calm"
title = "Rain (cello bridge)"
infillStartS = 10.0
infillEndS = 20.0
fullLyrics = \"\"\"[Verse]
Rain on the window, keys in the dark
[Bridge]
A cello answers, soft and slow
\"\"\"

# 3. the replaced section as WAV
[[jobs]]
key = "demo-section-wav"
kind = "wav"
after = "demo-section"
params = { taskId = "${demo-section.task_id}", audioId = "${demo-section.tracks[0].id}" }
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_demo_config(base: Path, upstream_url: str, callback_port: int) -> Path:
    path = base / "config.toml"
    text = DEMO_CONFIG.replace("@SANDBOX@", upstream_url).replace("@PORT@", str(callback_port))
    path.write_text(text.replace("@DIR@", str(base)), encoding="utf-8")
    return path


def run_demo(args: argparse.Namespace) -> int:
    from orchestrator.sandbox.config import SandboxConfig
    from orchestrator.sandbox.faults import parse_faults
    from orchestrator.sandbox.server import SandboxServer

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
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
    config = write_demo_config(base, sandbox.url, _free_port())
    daemon = Daemon(load_settings(config))
    started = time.monotonic()
    jobs: list[Job] = []
    try:
        daemon.start()  # records the config's [[jobs]]: the pipeline
        assert daemon.parts is not None
        service = daemon.parts.service
        console.print(
            f"[bold]orchestrator demo[/]  sandbox {sandbox.url}  "
            f"callbacks {'dropped' if args.no_callbacks else 'on'}  config {config}"
        )
        console.print(f"status page while it runs: http://127.0.0.1:{daemon.callback_port}/ui/")
        jobs = _follow(service, console)
    finally:
        daemon.stop()
        ledger = sandbox.ledger()
        sandbox.stop()
        log_file.close()
    _summary(console, jobs, ledger, time.monotonic() - started, log_path)
    return 0 if jobs and all(j.state == JobState.COMPLETED for j in jobs) else 1


def _follow(service: JobService, console: Console, timeout_s: float = 300.0) -> list[Job]:
    """Print each job's moves until every job (for_each children too) is finished."""
    seen: dict[str, tuple[object, ...]] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = service.list()
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
    for job, prefix in tree_order(jobs):
        table.add_row(
            prefix + job.key,
            job.kind,
            job.state.value,
            str(job.polls),
            str(job.callbacks),
            str(job.submit_attempts),
            str(sum(1 for a in job.artifacts if a.path)),
        )
    console.print(table)
    submits = ledger.get("submits")
    own = sum(1 for j in jobs if j.for_each is None)  # a for_each job's children submit
    console.print(
        f"upstream saw {len(submits) if isinstance(submits, list) else '?'} submits "
        f"for {own} jobs (never more: nothing is paid for twice)"
    )
    for job in jobs:
        for artifact in job.artifacts:
            if artifact.path:
                digest = (artifact.sha256 or "")[:12]
                console.print(f"  {artifact.path}  ({artifact.bytes} bytes, sha256 {digest}…)")
    console.print(f"daemon log: {log_path}")
