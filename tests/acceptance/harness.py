"""Acceptance harness: the sandbox over real HTTP on loopback, the CLI and the daemon as
subprocesses, real signals. Every test writes its own config, database and files under tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.faults import parse_faults
from orchestrator.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    servers: list[SandboxServer] = []

    def start(
        faults: str = "", time_scale: float = 0.02, seed: int = 1, **kw: Any
    ) -> SandboxServer:
        server = SandboxServer(
            SandboxConfig(
                port=0, faults=parse_faults(faults), time_scale=time_scale, seed=seed, **kw
            )
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@dataclass
class Deployment:
    """A config file, a database and an artifacts folder under tmp_path, driven by the CLI."""

    dir: Path
    config: Path
    callback_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    runs: int = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_CRASH")}
        env.pop("SUNO_API_KEY", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(
        self, *args: str, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.dir,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"orchestrator {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def start_daemon(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = (self.dir / f"daemon-{self.runs}.log").open("wb")
        env = self.env()
        env.update(extra_env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.dir,
        )
        log.close()
        self.procs.append(proc)
        wait_for(self._listening, 20, "the daemon's callback server")
        return proc

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.callback_port), timeout=0.2):
                return True
        except OSError:
            return False

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.dir.glob("daemon-*.log")))

    def _read(self, what: Callable[[Any], Any]) -> Any:
        """``what(orchestrator)`` in this process, as the JSON the CLI would print: tests
        poll job state every 0.1 s, and a CLI process each time (interpreter, imports) cost
        a core's worth of CPU, taken from the daemons under test. Tests that are about the
        CLI call it."""
        from orchestrator.api import Orchestrator

        with Orchestrator(self.config) as orc:
            return json.loads(json.dumps(what(orc)))

    def jobs(self) -> list[dict[str, Any]]:
        """What `orchestrator status --json` prints."""
        result: list[dict[str, Any]] = self._read(lambda orc: orc.status_json())
        return result

    def show(self, key: str) -> dict[str, Any]:
        """What `orchestrator show KEY --json` prints."""
        result: dict[str, Any] = self._read(lambda orc: orc.detail(key).show_json())
        return result

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def write_config(
    directory: Path,
    upstream: str,
    *,
    callback_port: int,
    interval_s: float = 30.0,
    deadline_s: float = 600.0,
    mode: str = "verify",
    extra: str = "",
    jobs: str = "",
    polling: str = "",
) -> Path:
    config = directory / "config.toml"
    config.write_text(
        f"""
[storage]
url = "sqlite:///var/orchestrator.db"
artifacts_dir = "var/artifacts"

[provider]
profile = "sunoapi"
base_url = "{upstream}"
api_key_env = "ORCHESTRATOR_TEST_API_KEY"
timeout_s = 5.0

[polling]
interval_s = {interval_s}
deadline_s = {deadline_s}
tick_s = 0.1
backoff_base_s = 0.2
backoff_max_s = 2.0
confirm_delay_s = 0.5
{polling}

[submit]
backoff_base_s = 0.2
backoff_max_s = 2.0

[downloads]
backoff_base_s = 0.2
backoff_max_s = 2.0

[callbacks]
listen = "127.0.0.1:{callback_port}"
public_url = "http://127.0.0.1:{callback_port}"
mode = "{mode}"

[daemon]
lease_s = 5.0
shutdown_grace_s = 5.0
{extra}
{jobs}
"""
    )
    return config


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(upstream: str, **kw: Any) -> Deployment:
        port = free_port()
        config = write_config(tmp_path, upstream, callback_port=port, **kw)
        deployment = Deployment(tmp_path, config, port)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.stop_all()


SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "a calm piano piece"}


def submit_song(deployment: Deployment, key: str) -> None:
    deployment.cli(
        "submit", "generate_music", "--params", json.dumps(SONG), "--key", key, check=True
    )
