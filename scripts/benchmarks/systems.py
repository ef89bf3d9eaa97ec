"""The systems under test, each run as its own process against one shared sandbox.

``OrchestratorSystem`` is the daemon (``orchestrator run``) with a generated config;
``BaselineSystem`` is one of ``baselines/*.py``. Both answer the same questions: which
callback URL base they hand to the upstream, which jobs ended how and when they saw it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
API_KEY = "sandbox-key"
SUCCEEDED = {"succeeded", "completed"}
FAILED = {"failed"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def song(key: str) -> dict[str, Any]:
    """The job every system runs: a short generate_music request tagged with its key."""
    return {"customMode": False, "instrumental": True, "model": "V4_5", "prompt": f"bench {key}"}


def key_of_params(params: Any) -> str | None:
    prompt = params.get("prompt", "") if isinstance(params, dict) else ""
    return prompt[6:] if isinstance(prompt, str) and prompt.startswith("bench ") else None


class ResourceMonitor:
    """Peak RSS (process and its children) sampled by the caller; CPU seconds at the end."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.cpu_s = 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        rss, cpu = 0, 0.0
        for p in self._tree():
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_s = max(self.cpu_s, cpu)


class System:
    name = "system"
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    monitor: ResourceMonitor | None = None

    def start(self) -> None:
        raise NotImplementedError

    def outcomes(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def owns(self, callback_url: str) -> bool:
        return f"127.0.0.1:{self.port}/" in callback_url

    def sample(self) -> None:
        if self.monitor is not None:
            self.monitor.sample()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()


class OrchestratorSystem(System):
    name = "orchestrator"

    def __init__(
        self,
        workdir: Path,
        sandbox_url: str,
        *,
        interval_s: float,
        scale: float,
        jitter: float = 0.1,
        tick_s: float | None = 0.1,
        poll_rate_per_s: float = 0.0,
        concurrency: int = 8,
        submit_rate: int = 1000,
        callbacks: bool = True,
        strategy: str = "adaptive",
        name: str = "orchestrator",
    ) -> None:
        self.name = name
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.pending: list[str] = []
        #: the keys of this run (a database reused from a warm-up holds others, finished)
        self.measured: set[str] = set()
        self.presubmit_threads = 0
        self.presubmit_timeout_s = 0.0
        backoff = max(0.05, 5.0 * scale)
        self.config = workdir / "config.toml"
        self.config.write_text(
            f"""
[storage]
url = "sqlite:///orchestrator.db"
artifacts_dir = "artifacts"

[provider]
profile = "sunoapi"
base_url = "{sandbox_url}"
api_key_env = "BENCH_SANDBOX_KEY"
timeout_s = 5.0
submit_rate = {submit_rate}
submit_window_s = 1.0
poll_rate_per_s = {poll_rate_per_s}
breaker_cooldown_s = {max(0.5, 30 * scale)}

[polling]
interval_s = {interval_s}
jitter = {jitter}
deadline_s = 86400.0
{"" if tick_s is None else f"tick_s = {tick_s}"}
concurrency = {concurrency}
confirm_delay_s = {max(0.05, 2.0 * scale)}
strategy = "{strategy}"
min_gap_s = {2.0 * scale}
safety_margin_s = {5.0 * scale}
confirm_max_gap_s = {3.0 * scale}
confirm_window_s = {60.0 * scale}
{_factor_line()}
backoff_base_s = {backoff}
backoff_max_s = {max(1.0, 600 * scale)}

[submit]
backoff_base_s = {max(0.05, 2.0 * scale)}
backoff_max_s = {max(1.0, 300 * scale)}

[downloads]
backoff_base_s = {max(0.05, 2.0 * scale)}
backoff_max_s = {max(1.0, 300 * scale)}

[callbacks]
enabled = {"true" if callbacks else "false"}
listen = "127.0.0.1:{self.port}"
public_url = "http://127.0.0.1:{self.port}"
mode = "verify"

[daemon]
lease_s = 30.0
shutdown_grace_s = 3.0

[logging]
level = "warning"
"""
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        env["BENCH_SANDBOX_KEY"] = API_KEY
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def record_on_start(self, keys: list[str]) -> None:
        """Record these jobs when the system starts (so that it can start in parallel)."""
        self.pending = list(keys)
        self.measured = set(keys)

    def record(self, keys: list[str]) -> None:
        """Record the jobs in the database (as `orchestrator submit` would), daemon or not."""
        from orchestrator.api import Orchestrator

        os.environ["BENCH_SANDBOX_KEY"] = API_KEY
        with Orchestrator(self.config) as orc:
            for key in keys:
                orc.submit("generate_music", song(key), key=key)

    def presubmit_on_start(self, threads: int, timeout_s: float) -> None:
        """Submit the recorded jobs before the daemon starts (see :meth:`presubmit`)."""
        self.presubmit_threads = threads
        self.presubmit_timeout_s = timeout_s

    def presubmit(self, threads: int, timeout_s: float) -> int:
        """Help the running daemon submit its recorded jobs: its own Submitter (same code,
        config, callback URLs and ledger entries), driven by ``threads`` threads here.

        The scale scenario needs N jobs in flight; the daemon's one submit thread makes
        ~50 submits/s on this machine, so 10,000 would take 200 s of the time budget. Each
        ``tick`` claims its jobs under a lease, so the threads never submit a job twice.
        """
        from concurrent.futures import ThreadPoolExecutor

        from orchestrator.config import load_settings
        from orchestrator.daemon.runner import Daemon
        from orchestrator.logs import configure

        configure("warning", stream=sys.stderr)  # not one info line per transition here
        os.environ["BENCH_SANDBOX_KEY"] = API_KEY
        daemon = Daemon(load_settings(self.config))
        daemon.parts = parts = daemon._build()
        deadline = time.monotonic() + timeout_s

        def drive() -> int:
            sent, idle = 0, 0
            while time.monotonic() < deadline and idle < 3:
                n = parts.submitter.tick()
                sent += n
                idle = 0 if n else idle + 1
                if not n:
                    time.sleep(0.05)
            return sent

        try:
            with ThreadPoolExecutor(threads) as pool:
                return sum(pool.map(lambda _: drive(), range(threads)))
        finally:
            for client in daemon._clients:
                client.close()
            for pool in daemon._pools:
                pool.shutdown(wait=True)
            parts.store.close()

    def start(self) -> None:
        if self.pending:
            self.record(self.pending)
            self.pending = []
        log = (self.dir / "daemon.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=self.dir,
        )
        log.close()
        self.monitor = ResourceMonitor(self.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited: {(self.dir / 'daemon.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("daemon did not listen within 30 s")
        if self.presubmit_threads:
            # alongside the daemon, which submits and polls meanwhile as it always does
            self.presubmit(self.presubmit_threads, self.presubmit_timeout_s)

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Per key: task id, final state (or None) and when the job became succeeded/failed."""
        from orchestrator.api import Orchestrator

        out: dict[str, dict[str, Any]] = {}
        with Orchestrator(self.config) as orc:
            for job in orc.list():
                entry: dict[str, Any] = {"task_id": job.task_id, "state": None}
                state = job.state.value
                if state in SUCCEEDED | FAILED:
                    entry["state"] = "succeeded" if state in SUCCEEDED else "failed"
                    for event in orc.detail(job.key).events:
                        to = event.to_state.value if event.to_state else None
                        if to in {"succeeded", "failed"}:
                            entry["seen_at"] = event.at.timestamp()
                            break
                else:
                    entry["local_state"] = state
                entry["callback_events"] = (
                    sum(1 for e in orc.detail(job.key).events if e.source == "callback")
                    if job.callbacks
                    else 0
                )
                out[job.key] = entry
        return out

    def terminal_count(self) -> int:
        from orchestrator.api import Orchestrator

        with Orchestrator(self.config) as orc:
            return sum(
                1
                for job in orc.list()
                if job.state.value in SUCCEEDED | FAILED
                and (not self.measured or job.key in self.measured)
            )

    def callback_events(self) -> int:
        """Callbacks committed to the database (every acknowledged one must be here)."""
        import sqlite3

        con = sqlite3.connect(self.dir / "orchestrator.db")
        try:
            (n,) = con.execute("SELECT COUNT(*) FROM events WHERE source = 'callback'").fetchone()
        finally:
            con.close()
        return int(n)


class BaselineSystem(System):
    def __init__(
        self,
        name: str,
        workdir: Path,
        sandbox_url: str,
        *,
        interval_s: float,
        keys: list[str],
        timeout_s: float,
        serve: bool = False,
    ) -> None:
        self.name = name
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = workdir / f"{name}-results.json"
        self.prefix = f"bench-{os.getpid()}-{name}-{workdir.name}"
        self.spec = {
            "sandbox": sandbox_url,
            "api_key": API_KEY,
            "interval_s": interval_s,
            "port": self.port,
            "jobs": [{"key": k, "params": song(k)} for k in keys],
            "timeout_s": timeout_s,
            "serve": serve,
            "out": str(self.out),
            "name": name,
        }
        self.interval_s = interval_s
        self.sandbox_url = sandbox_url

    def start(self) -> None:
        spec_path = self.dir / f"{self.name}-spec.json"
        spec_path.write_text(json.dumps(self.spec))
        script = {
            "recipe": "recipe.py",
            "apscheduler": "apscheduler_alone.py",
            "celery": "celery_poll.py",
        }[self.name]
        env = {
            **os.environ,
            "PYTHONPATH": str(HERE / "baselines"),
            "BENCH_SANDBOX": self.sandbox_url,
            "BENCH_API_KEY": API_KEY,
            "BENCH_INTERVAL_S": str(self.interval_s),
            "BENCH_CELERY_PREFIX": self.prefix,
            "PYTHONUNBUFFERED": "1",
        }
        log = (self.dir / f"{self.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "baselines" / script), "--spec", str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.dir,
        )
        log.close()
        self.monitor = ResourceMonitor(self.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return  # finished or crashed: results() tells
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)

    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def results(self) -> dict[str, Any]:
        if not self.out.exists():
            log = (self.dir / f"{self.name}.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{self.name} wrote no results: {log}")
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def outcomes(self) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = self.results()["jobs"]
        return {k: {"state": None, **v} for k, v in jobs.items()}


def _factor_line() -> str:
    """BENCH_CALLBACK_POLL_FACTOR overrides [polling] callback_poll_factor (for trade-off runs)."""
    factor = os.environ.get("BENCH_CALLBACK_POLL_FACTOR")
    return f"callback_poll_factor = {float(factor)}" if factor else ""
