"""The orchestrator as a cluster: several daemons on one PostgreSQL schema behind a loopback
balancer that hands each callback to a random daemon (what a load balancer in front of
several nodes does). Used by the bench's ``cluster`` scenarios (scripts/benchmarks/run.py).
"""

from __future__ import annotations

import random
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from systems import OrchestratorSystem, ResourceMonitor, free_port


class Balancer:
    """HTTP on 127.0.0.1 forwarding every request to a random backend port."""

    def __init__(self, ports: list[int], seed: int) -> None:
        self.ports = ports
        rng = random.Random(seed)
        rng_lock = threading.Lock()
        client = httpx.Client(timeout=10.0)
        self.client = client
        self.forwarded = 0
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                with rng_lock:
                    port = rng.choice(balancer.ports)
                    balancer.forwarded += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                try:
                    answer = client.request(
                        self.command,
                        f"http://127.0.0.1:{port}{self.path}",
                        content=body,
                        headers=headers,
                    )
                    status, content = answer.status_code, answer.content
                except httpx.HTTPError:
                    status, content = 502, b"backend unreachable"
                self.send_response(status)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_POST = do_GET = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()


class SumMonitor(ResourceMonitor):
    """Every daemon's CPU seconds and RSS, summed."""

    def __init__(self, monitors: list[ResourceMonitor]) -> None:
        self.monitors = monitors
        self.peak_rss = 0
        self.cpu_s = 0.0

    def sample(self) -> None:
        for m in self.monitors:
            m.sample()
        self.peak_rss = max(self.peak_rss, sum(m.peak_rss for m in self.monitors))
        self.cpu_s = sum(m.cpu_s for m in self.monitors)


class ClusterSystem(OrchestratorSystem):
    """``daemons`` orchestrator daemons on one PostgreSQL schema of their own."""

    def __init__(
        self, workdir: Path, sandbox_url: str, *, daemons: int, pg_url: str, seed: int, **kw: Any
    ) -> None:
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.pg_url = pg_url
        url = f"{pg_url}?options=-csearch_path%3D{self.schema}"
        nodes = [
            OrchestratorSystem(workdir / f"node{i}", sandbox_url, **kw) for i in range(daemons)
        ]
        self.balancer = Balancer([n.port for n in nodes], seed)
        for node in nodes:
            text = node.config.read_text()
            text = text.replace('url = "sqlite:///orchestrator.db"', f'url = "{url}"')
            text = text.replace(
                f'public_url = "http://127.0.0.1:{node.port}"',
                f'public_url = "http://127.0.0.1:{self.balancer.port}"',
            )
            text = text.replace('artifacts_dir = "artifacts"', f'artifacts_dir = "{workdir}/files"')
            node.config.write_text(text)
        self.nodes = nodes
        first = nodes[0]
        # what the bench reads through the base class: the first node's config (any node's
        # view of the shared database is the same)
        self.name = f"orchestrator-{daemons}d"
        self.dir, self.config, self.port = first.dir, first.config, self.balancer.port
        self.pending, self.measured = [], set()
        self.presubmit_threads, self.presubmit_timeout_s = 0, 0.0
        self.proc = None
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        engine.dispose()

    def start(self) -> None:
        self.balancer.start()
        first, rest = self.nodes[0], self.nodes[1:]
        first.pending, first.measured = self.pending, self.measured
        first.presubmit_threads = self.presubmit_threads
        first.presubmit_timeout_s = self.presubmit_timeout_s
        self.pending = []
        # the first creates the schema and records the jobs; the others then start together
        threads = [threading.Thread(target=n.start) for n in rest]
        first_started = threading.Thread(target=first.start)
        first_started.start()
        for t in threads:
            t.start()
        first_started.join()
        for t in threads:
            t.join()
        self.monitor = SumMonitor([n.monitor for n in self.nodes if n.monitor is not None])

    def owns(self, callback_url: str) -> bool:
        return f"127.0.0.1:{self.balancer.port}/" in callback_url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.balancer.thread.is_alive():
            self.balancer.stop()

    def drop(self) -> None:
        engine = sa.create_engine(self.pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        engine.dispose()
