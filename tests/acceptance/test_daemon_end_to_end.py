"""The daemon end to end: the CLI and `orchestrator run` as subprocesses, the sandbox over
real HTTP on loopback, real signals. The sandbox ledger is the upstream's word on what was
submitted, polled, called back and finished.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.harness import SONG, Deployment, submit_song, wait_for

pytestmark = pytest.mark.timeout(180)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _all_completed(deployment: Deployment, n: int) -> list[dict[str, Any]] | None:
    jobs = deployment.jobs()
    done = [j for j in jobs if j["state"] == "completed"]
    return jobs if len(done) == n else None


def _accepted(ledger: dict[str, Any]) -> list[str]:
    return [s["taskId"] for s in ledger["submits"] if s.get("outcome") == "accepted"]


def _assert_one_submit_per_job(jobs: list[dict[str, Any]], ledger: dict[str, Any]) -> None:
    """Every task the upstream created belongs to exactly one job: nothing was paid twice."""
    accepted = _accepted(ledger)
    assert len(accepted) == len(set(accepted))
    assert sorted(accepted) == sorted(j["task_id"] for j in jobs), "a job was submitted twice"


def _check_files_against_ledger(jobs: list[dict[str, Any]], ledger: dict[str, Any]) -> int:
    by_sha = {a["sha256"] for a in ledger["artifacts"].values()}
    checked = 0
    for job in jobs:
        for artifact in job["artifacts"]:
            data = Path(artifact["path"]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            assert digest == artifact["sha256"], artifact
            assert len(data) == artifact["bytes"]
            assert digest in by_sha, f"{artifact['name']}: not what the upstream served"
            checked += 1
    return checked


def test_callbacks_finish_jobs_within_a_round_trip_not_the_next_poll(
    start_sandbox: Any, deploy: Any
) -> None:
    """With callbacks healthy and a 30 s poll interval, each job is seen succeeded within about
    one upstream round trip of the sandbox finishing it: only a callback can do that."""
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=30.0)
    deployment.start_daemon()
    keys = [f"song-{i}" for i in range(4)]
    for key in keys:
        submit_song(deployment, key)
    jobs = wait_for(lambda: _all_completed(deployment, len(keys)), 60, "4 completed jobs")
    ledger = sandbox.ledger()

    for job in jobs:
        task = ledger["tasks"][job["task_id"]]
        events = deployment.show(job["key"])["events"]
        succeeded_at = next(_epoch(e["at"]) for e in events if e["to_state"] == "succeeded")
        lag = succeeded_at - task["completed_at"]
        # the next scheduled poll would be ~30 s away; a callback-driven poll is sub-second
        assert lag < 5.0, f"{job['key']}: seen {lag:.2f}s after the upstream finished"
        assert job["callbacks"] >= 1
        # callbacks wake at most one poll per status step (plus one confirmation)
        assert ledger["polls"].get(job["task_id"], 0) <= 6
    _assert_one_submit_per_job(jobs, ledger)
    assert _check_files_against_ledger(jobs, ledger) == 4 * len(keys)


def test_all_callbacks_dropped_jobs_complete_by_polling(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(faults="drop=1.0", time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=0.5)
    deployment.start_daemon()
    for i in range(3):
        submit_song(deployment, f"poll-{i}")
    deployment.cli(
        "submit", "music_video", "--key", "video-bad-audio", "--param", "taskId=nope",
        "--param", "audioId=nope", check=True,
    )  # fmt: skip
    wait_for(
        lambda: all(j["state"] in ("completed", "failed") for j in deployment.jobs()),
        60,
        "every job finished",
    )
    jobs = {j["key"]: j for j in deployment.jobs()}
    ledger = sandbox.ledger()
    assert all(jobs[f"poll-{i}"]["state"] == "completed" for i in range(3))
    assert all(j["callbacks"] == 0 for j in jobs.values())
    assert jobs["video-bad-audio"]["error"]["stage"] == "submit"
    assert not [c for c in ledger["callbacks"] if c.get("status") == 200]
    _check_files_against_ledger([j for j in jobs.values() if j["state"] == "completed"], ledger)


def test_duplicate_early_and_reordered_callbacks_cause_one_transition_each(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(faults="duplicate=1.0,early=0.5,reorder=0.5", time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=30.0)
    deployment.start_daemon()
    keys = [f"dup-{i}" for i in range(4)]
    for key in keys:
        submit_song(deployment, key)
    wait_for(lambda: _all_completed(deployment, len(keys)), 60, "completed jobs")
    ledger = sandbox.ledger()
    assert len(ledger["callbacks"]) > 2 * len(keys)  # the duplicates really were delivered
    for key in keys:
        detail = deployment.show(key)
        moves = Counter(
            (e["from_state"], e["to_state"])
            for e in detail["events"]
            if e["to_state"] and e["from_state"] != e["to_state"]
        )
        assert all(n == 1 for n in moves.values()), (key, moves)
        assert detail["callbacks"] >= 2
    _assert_one_submit_per_job(deployment.jobs(), ledger)


def test_sigkill_mid_run_and_restart_finishes_everything_with_no_second_submit(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(faults="drop=0.3", time_scale=0.03)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0)
    keys = [f"crash-{i}" for i in range(12)]
    for key in keys:
        submit_song(deployment, key)
    first = deployment.start_daemon()
    # kill it while work is in flight: some jobs submitted, none or few completed
    wait_for(lambda: len(sandbox.ledger()["submits"]) >= 4, 30, "some submits")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    deployment.start_daemon()

    def settled() -> list[dict[str, Any]] | None:
        js = deployment.jobs()
        return js if all(j["state"] in ("completed", "uncertain") for j in js) else None

    jobs = wait_for(settled, 90, "every job completed (or uncertain)")
    ledger = sandbox.ledger()
    accepted = _accepted(ledger)
    assert len(accepted) == len(set(accepted)) <= len(keys)
    known = {j["task_id"] for j in jobs if j["task_id"]}
    assert known <= set(accepted)
    # an accepted task no job knows can only be an uncertain job's (held, never resubmitted)
    assert len(set(accepted) - known) <= sum(j["state"] == "uncertain" for j in jobs)
    completed = [j for j in jobs if j["state"] == "completed"]
    # a SIGKILL exactly mid-submit may leave one job uncertain: it must never be resubmitted
    assert len(completed) >= len(keys) - 1
    _check_files_against_ledger(completed, ledger)
    leftovers = list((deployment.dir / "var" / "artifacts").rglob("*.part"))
    assert leftovers == []


def test_sigterm_stops_cleanly_and_config_jobs_are_idempotent(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    jobs = (
        '[[jobs]]\nkey = "from-config"\nkind = "generate_music"\n'
        "params = { customMode = false, instrumental = true, model = "
        f'"V4_5", prompt = {json.dumps(SONG["prompt"])} }}\n'
    )
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0, jobs=jobs)
    proc = deployment.start_daemon()
    wait_for(lambda: _all_completed(deployment, 1), 60, "the config job")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "daemon_stopped" in deployment.logs()
    proc = deployment.start_daemon()  # restart: the same [[jobs]] entry is not enqueued again
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert len(deployment.jobs()) == 1
    assert len(sandbox.ledger()["submits"]) == 1


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_the_sigterm_handler_comes_before_the_heavy_imports() -> None:
    """What `orchestrator run` imports before it installs its handler: none of the heavy
    libraries (a SIGTERM while they load must already be a clean stop)."""
    import subprocess
    import sys

    heavy = ("sqlalchemy", "sqlmodel", "flask", "apscheduler", "httpx", "waitress", "psycopg")
    probe = (
        "import sys, orchestrator.cli.main, orchestrator.daemon.signals\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("after_s", [0.0, 0.3, 0.8, 1.5])
def test_a_sigterm_during_start_up_is_a_clean_stop(deploy: Any, after_s: float) -> None:
    """Supervisors send SIGTERM whenever they like, also while the daemon is still importing
    its modules or opening the database: never Python's default death (exit -15).

    "The first moment" is when `orchestrator run` installs its handler, the first thing it
    does once the interpreter runs its code (before that, no Python program can catch a
    signal); the test waits for that moment, then signals at delays that land in the heavy
    imports, the settings, the store and the scheduler, on a fast or a loaded machine."""
    import subprocess
    import sys
    import time

    deployment: Deployment = deploy("http://127.0.0.1:9")
    log_path = deployment.dir / f"early-{after_s}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "--config", str(deployment.config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=deployment.env(),
        cwd=deployment.dir,
    )
    log.close()
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid):
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, "the daemon never installed its SIGTERM handler"
        time.sleep(0.005)
    time.sleep(after_s)  # lands in start-up: imports, settings, the store, the scheduler
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log_path.read_text()


def test_under_systemd_it_says_ready_pets_the_watchdog_and_says_stopping(
    deploy: Any, tmp_path: Path
) -> None:
    import socket as socketlib

    path = tmp_path / "notify.sock"
    listener = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(20)
    try:
        deployment: Deployment = deploy("http://127.0.0.1:9")
        proc = deployment.start_daemon({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "600000"})
        got = [listener.recv(256).decode() for _ in range(2)]
        assert got[0] == "READY=1" and got[1] == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        while (message := listener.recv(256).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert proc.wait(20) == 0
    finally:
        listener.close()
