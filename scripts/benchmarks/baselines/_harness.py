"""Glue shared by the baselines: arguments, the job list, the results file, the HTTP server.

Only plumbing lives here, so that each baseline file reads like what an integrator would
write. A baseline is a process: ``python <baseline>.py --spec spec.json`` submits the jobs of
the spec to the sandbox, tracks them its own way, writes ``--out`` when every job is terminal
(or at ``timeout_s``, or on SIGTERM) and exits. With ``serve`` in the spec it keeps its
callback receiver up until SIGTERM (the callback-ingest scenario).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

#: the upstream statuses a typical integrator treats as final (the provider's status list)
TERMINAL_OK = {"SUCCESS"}
TERMINAL_FAILED = {
    "CREATE_TASK_FAILED",
    "GENERATE_AUDIO_FAILED",
    "CALLBACK_EXCEPTION",
    "SENSITIVE_WORD_ERROR",
}


class Spec:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.sandbox: str = raw["sandbox"]
        self.api_key: str = raw["api_key"]
        self.interval_s: float = float(raw["interval_s"])
        self.port: int = int(raw["port"])
        self.jobs: list[dict[str, Any]] = raw["jobs"]
        self.timeout_s: float = float(raw["timeout_s"])
        self.serve: bool = bool(raw.get("serve", False))
        self.out = Path(raw["out"])
        self.name: str = raw.get("name", "baseline")
        self.redis_url: str = raw.get("redis_url", "redis://127.0.0.1:6379/0")

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def load_spec() -> Spec:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    return Spec(json.loads(Path(args.spec).read_text()))


class Results:
    """What the baseline knows locally: per job key, task id, final state, when it saw it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.callbacks_acked = 0
        self.callbacks_stored = 0
        self.stop = threading.Event()

    def finish(self, key: str, state: str, via: str) -> None:
        with self.lock:
            job = self.jobs.setdefault(key, {})
            if "state" not in job:
                job.update(state=state, seen_at=time.time(), via=via)

    def done(self, keys: list[str]) -> bool:
        with self.lock:
            return all("state" in self.jobs.get(k, {}) for k in keys)

    def write(self, spec: Spec, extra: dict[str, Any] | None = None) -> None:
        with self.lock:
            data = {
                "jobs": self.jobs,
                "callbacks_acked": self.callbacks_acked,
                "callbacks_stored": self.callbacks_stored,
                **(extra or {}),
            }
        tmp = spec.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(spec.out)


def serve(app: Any, port: int) -> Any:
    """The Flask app on a threaded werkzeug server (what ``app.run(threaded=True)`` uses)."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_until_done(spec: Spec, results: Results) -> None:
    """Block until every job is terminal (or timeout, or SIGTERM); with ``serve``, until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: results.stop.set())
    keys = [job["key"] for job in spec.jobs]
    deadline = time.monotonic() + spec.timeout_s
    while not results.stop.is_set() and time.monotonic() < deadline:
        if not spec.serve and results.done(keys):
            break
        results.stop.wait(0.05)
    results.stop.set()
