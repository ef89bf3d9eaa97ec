"""The chaos soak: the sandbox with faults, hundreds of jobs of every kind, the daemon SIGKILLed
at random moments and restarted, then every promise checked against the sandbox ledger, and
every finished job's notification against a flaky receiver (10 % of requests answered 503)
that verifies every signature.

    scripts/chaos [--jobs 300] [--kills 10] [--seed 1] [--quick] [--workdir DIR]
                  [--postgres] [--daemons N]

With ``--daemons N`` several daemons share the database (``--postgres``: a fresh schema on
``$ORCHESTRATOR_TEST_PG_URL``), each kill strikes a random one, and every promise is checked
for all of them together.

Sources: music_video and replace_section need a finished song. They are created directly on the
sandbox before the faults are switched on (their tasks are not the daemon's and are left out
of the checks); the daemon's own jobs then reference their taskId/audioId.

Every tenth job is a pipeline instead: a song, a WAV of its first track after it, and a music
video of each of its tracks (for_each), released by the daemon as the song completes, through
the same kills; a failed song must fail its descendants at stage dependency, unsubmitted.

Uncertain jobs run under the ``resubmit`` policy with a grace longer than any task takes, so a
callback carrying the token resolves most of them first; the rest are resubmitted and counted
separately (they may have paid twice, on purpose). Exit 0 only with zero violations.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator.api import Orchestrator
from orchestrator.domain import NotificationState
from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.faults import parse_faults
from orchestrator.sandbox.server import SandboxServer
from orchestrator.sandbox.testing import SandboxClient
from orchestrator.states import TERMINAL
from orchestrator.stores.sql import SQLStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.ledger_checks import check
from tests.acceptance.receiver import SECRET, Receiver

FAULTS = (
    "drop=0.3,duplicate=0.2,early=0.1,reorder=0.3,lag=30,poll_error=0.05,submit_error=0.05,"
    "rate_limit=0.05,reset=0.03,accept_5xx=0.05,expire=0.05,fail=0.05"
)
SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "a calm piano piece"}
SOURCE_CALLBACK = "http://127.0.0.1:9/source-callback"


def _config(
    workdir: Path, upstream: str, port: int, receiver_url: str, db: str, artifacts: Path
) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.toml"
    path.write_text(
        f"""
[storage]
url = "{db}"
artifacts_dir = "{artifacts}"

[provider]
profile = "sunoapi"
base_url = "{upstream}"
api_key_env = "ORCHESTRATOR_CHAOS_API_KEY"
timeout_s = 5.0
submit_rate = 200
submit_window_s = 1.0
poll_rate_per_s = 300.0
breaker_threshold = 50
breaker_cooldown_s = 1.0

[polling]
interval_s = 2.0
deadline_s = 900.0
tick_s = 0.2
concurrency = 16
backoff_base_s = 0.3
backoff_max_s = 3.0
confirm_delay_s = 0.5

[submit]
max_attempts = 30
backoff_base_s = 0.3
backoff_max_s = 3.0
uncertain_policy = "resubmit"
uncertain_grace_s = 15.0

[downloads]
max_attempts = 20
backoff_base_s = 0.3
backoff_max_s = 3.0
concurrency = 8

[callbacks]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
mode = "verify"

[daemon]
lease_s = 5.0
shutdown_grace_s = 5.0

[logging]
level = "info"

[[notify]]
name = "app"
url = "{receiver_url}"
secret_env = "ORCHESTRATOR_CHAOS_WEBHOOK_SECRET"
retry_schedule_s = [0, 0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]
"""
    )
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sources(server: SandboxServer, count: int) -> list[tuple[str, str]]:
    """Finished songs made directly on the fault-free sandbox: (taskId, audioId) per track."""
    task_ids = []
    with SandboxClient(server.url) as client:
        for _ in range(count):
            task_ids.append(client.submit_ok("generate", {**SONG, "callBackUrl": SOURCE_CALLBACK}))
    deadline = time.monotonic() + 120
    while True:
        tasks = server.ledger()["tasks"]
        # (their callbacks go nowhere: record-info may say CALLBACK_EXCEPTION once done)
        if all(tasks[t]["completed_at"] is not None for t in task_ids):
            return [(t, a) for t in task_ids for a in tasks[t]["audio_ids"]]
        if time.monotonic() > deadline:
            raise SystemExit("chaos: the source songs never finished")
        time.sleep(0.2)


Spec = tuple[str, str, dict[str, Any], dict[str, Any]]  # key, kind, params, submit options


def _pipeline(key: str) -> list[Spec]:
    """A song, a WAV of its first track, a music video of each track."""
    return [
        (key, "generate_music", {**SONG, "prompt": f"chaos pipeline {key}"}, {}),
        (
            f"{key}-wav",
            "wav",
            {"taskId": f"${{{key}.task_id}}", "audioId": f"${{{key}.tracks[0].id}}"},
            {"after": [key]},
        ),
        (
            f"{key}-video",
            "music_video",
            {"taskId": f"${{{key}.task_id}}", "audioId": "${item.id}"},
            {"after": [key], "for_each": f"{key}.tracks"},
        ),
    ]


def _jobs(n: int, tracks: list[tuple[str, str]], rng: random.Random) -> list[Spec]:
    jobs: list[Spec] = []
    for i, (kind, params) in enumerate(_single_jobs(n, tracks, rng)):
        key = f"chaos-{i:04d}"
        if i % 10 == 9:
            jobs += _pipeline(key)
        else:
            jobs.append((key, kind, params, {}))
    return jobs


def _single_jobs(
    n: int, tracks: list[tuple[str, str]], rng: random.Random
) -> list[tuple[str, Any]]:
    jobs: list[tuple[str, Any]] = []
    videos = 0
    for i in range(n):
        roll = i % 5
        if roll == 3 and videos < len(tracks):
            task_id, audio_id = tracks[videos]  # one video per track: the upstream allows one
            videos += 1
            jobs.append(("music_video", {"taskId": task_id, "audioId": audio_id}))
        elif roll == 4:
            task_id, audio_id = rng.choice(tracks)
            jobs.append(
                (
                    "replace_section",
                    {
                        "taskId": task_id,
                        "audioId": audio_id,
                        "prompt": f"a new bridge {i}",
                        "tags": "pop",
                        "title": f"chaos {i}",
                        "infillStartS": 10.0,
                        "infillEndS": 30.0,
                        "fullLyrics": "la la la",
                    },
                )
            )
        else:
            jobs.append(("generate_music", {**SONG, "prompt": f"chaos song {i}"}))
    return jobs


class Daemon:
    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_CRASH")}
        with (self.workdir / f"daemon-{self.runs}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )

    def wait_ready(self, port: int, timeout: float = 20.0) -> None:
        """Until the callback server listens: the daemon has started its loops."""
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> tuple[int | None, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        return code, time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.workdir.glob("daemon-*.log")))


def _states(db: str) -> Counter[str]:
    store = SQLStore(db)
    try:
        return Counter({s.value: n for s, n in store.count_by_state().items()})
    finally:
        store.close()


def _database(args: argparse.Namespace, workdir: Path) -> str:
    """The URL every daemon uses: a SQLite file, or a fresh PostgreSQL schema."""
    if not args.postgres:
        return f"sqlite:///{workdir / 'var' / 'orchestrator.db'}"
    import uuid

    import sqlalchemy as sa

    base = os.environ.get("ORCHESTRATOR_TEST_PG_URL")
    if not base:
        raise SystemExit("chaos --postgres: set ORCHESTRATOR_TEST_PG_URL")
    schema = f"chaos_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    print(f"chaos: PostgreSQL schema {schema}", flush=True)
    return f"{base}?options=-csearch_path%3D{schema}"


def _wait_told(db: str, timeout: float) -> int:
    """Until no notification is pending (the last ones go out after the run settles)."""
    deadline = time.monotonic() + timeout
    while True:
        store = SQLStore(db)
        try:
            pending = store.notifications(states=[NotificationState.PENDING])
            delivered = store.notifications(states=[NotificationState.DELIVERED])
        finally:
            store.close()
        if not pending or time.monotonic() > deadline:
            return len(delivered)
        time.sleep(0.5)


def _check_told(db: str, receiver: Receiver) -> list[str]:
    """Every job that finished has a delivered notification of its end, whose id the
    receiver saw and verified; none is dead."""
    seen = {s.webhook_id for s in receiver.delivered()}
    forged = [s.webhook_id for s in receiver.all() if not s.verified]
    store = SQLStore(db)
    try:
        problems = [f"a notification failed verification: {i}" for i in forged]
        rows = store.notifications()
        problems += [f"dead notification {r.webhook_id} ({r.last_error})" for r in rows
                     if r.state == NotificationState.DEAD]  # fmt: skip
        by_job: dict[int, list[Any]] = {}
        for row in rows:
            if row.job_id is not None:
                by_job.setdefault(row.job_id, []).append(row)
        for job in store.list_jobs():
            wanted = {"completed": "job.completed", "failed": "job.failed"}.get(job.state.value)
            if wanted is None:
                continue
            ok = [r for r in by_job.get(job.id, []) if r.event == wanted
                  and r.state == NotificationState.DELIVERED and r.webhook_id in seen]  # fmt: skip
            if not ok:
                problems.append(f"{job.key}: {job.state.value}, no delivered {wanted} seen")
        return problems
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="orchestrator-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = SandboxServer(
        SandboxConfig(
            port=0,
            time_scale=args.time_scale,
            seed=args.seed,
            rate_limit_count=100,
            rate_limit_window_s=1.0,
            threads=32,
        )
    )
    server.start()
    try:
        n_videos = math.ceil(args.jobs / 5)
        tracks = _sources(server, max(1, math.ceil(n_videos / 2)))
        source_ids = frozenset(t for t, _ in tracks)
        server.set_faults(parse_faults(FAULTS))
        receiver = Receiver(_free_port(), fail_rate=0.1).start()  # a flaky application
        os.environ["ORCHESTRATOR_CHAOS_WEBHOOK_SECRET"] = SECRET
        db = _database(args, workdir)
        artifacts = workdir / "var" / "artifacts"
        nodes: list[tuple[Daemon, int]] = []
        for n in range(args.daemons):
            port = _free_port()
            home = workdir if args.daemons == 1 else workdir / f"node{n}"
            config = _config(home, server.url, port, receiver.url, db, artifacts)
            nodes.append((Daemon(config, home), port))
        for daemon, _port in nodes:
            daemon.start()
        with Orchestrator(nodes[0][0].config) as orc:
            for key, kind, params, options in _jobs(args.jobs, tracks, rng):
                orc.submit(kind, params, key=key, **options)
        for k in range(args.kills):
            daemon, port = rng.choice(nodes)  # any node may die
            daemon.wait_ready(port)
            time.sleep(rng.uniform(0.3, 5.0))  # a random moment of a running daemon
            daemon.kill()
            print(f"chaos: kill {k + 1}/{args.kills}, states {dict(_states(db))}", flush=True)
            daemon.start()
        settled_by = time.monotonic() + args.timeout
        while True:
            states = _states(db)
            open_jobs = sum(n for s, n in states.items() if s not in {t.value for t in TERMINAL})
            if open_jobs == 0:
                break
            if time.monotonic() > settled_by:
                print(f"chaos: not settled after {args.timeout}s: {dict(states)}", flush=True)
                break
            time.sleep(1.0)
        told = _wait_told(db, 60.0)
        stops = [daemon.stop() for daemon, _port in nodes]
        code = next((c for c, _ in stops if c != 0), 0)
        took = max(t for _, t in stops)
        ledger = server.ledger()
        report = check(db, artifacts, ledger, ignore_task_ids=source_ids)
        untold = _check_told(db, receiver)
    finally:
        server.stop()
        receiver.stop()
    violations = report.violations() + untold
    if open_jobs:
        violations.append(f"{open_jobs} jobs not settled")
    if code != 0:
        violations.append(f"SIGTERM: exit {code}")
    logs = "\n".join(daemon.logs() for daemon, _port in nodes)
    if "database is locked" in logs:
        violations.append("'database is locked' in a daemon log")
    print()
    print(f"faults: {FAULTS}")
    print(report.table())
    extra = [
        ("notifications delivered (receiver)", f"{told}"),
        ("daemons, database", f"{args.daemons}, {'PostgreSQL' if args.postgres else 'SQLite'}"),
        ("SIGKILLs / restarts", f"{args.kills} / {args.kills}"),
        ("SIGTERM exit, seconds", f"{code}, {took:.1f}"),
        ("elapsed seconds", f"{time.monotonic() - began:.0f}"),
        ("violations", str(len(violations))),
    ]
    for name, value in extra:
        print(f"{name:<34}  {value:>7}")
    for line in violations[:50]:
        print(f"VIOLATION: {line}")
    print(f"workdir: {workdir}")
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=360.0, help="seconds to settle")
    parser.add_argument("--workdir", help="default: a new temporary directory")
    parser.add_argument("--quick", action="store_true", help="40 jobs, 3 kills")
    parser.add_argument("--daemons", type=int, default=1, help="daemons sharing the database")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a schema of its own on $ORCHESTRATOR_TEST_PG_URL instead of a SQLite file",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.kills, args.timeout = min(args.jobs, 40), min(args.kills, 3), 60.0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
