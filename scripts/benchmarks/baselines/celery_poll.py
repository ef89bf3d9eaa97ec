"""Baseline 3, Celery: a polling task that re-schedules itself with ``countdown`` until the
task is finished, a Redis broker on 127.0.0.1:6379, and a Flask callback handler that
short-circuits it (it records the outcome in Redis; the next poll task sees it and stops).

Run as the baseline process (submits, serves callbacks, starts ``celery worker --pool threads
-c 8`` as a child and stops it), and imported by that worker as the Celery app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("BENCH_CELERY_PREFIX", "bench")
SANDBOX = os.environ.get("BENCH_SANDBOX", "")
API_KEY = os.environ.get("BENCH_API_KEY", "sandbox-key")
INTERVAL_S = float(os.environ.get("BENCH_INTERVAL_S", "30"))

celery_app = Celery("celery_poll", broker=REDIS_URL)
celery_app.conf.task_default_queue = f"{PREFIX}-polls"
celery_app.conf.broker_transport_options = {"visibility_timeout": 3600}
celery_app.conf.worker_hijack_root_logger = False
store = redis.Redis.from_url(REDIS_URL)
client = httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
TERMINAL_OK = {"SUCCESS"}
TERMINAL_FAILED = {
    "CREATE_TASK_FAILED",
    "GENERATE_AUDIO_FAILED",
    "CALLBACK_EXCEPTION",
    "SENSITIVE_WORD_ERROR",
}


def finish(key: str, state: str, via: str) -> None:
    record = json.dumps({"state": state, "seen_at": time.time(), "via": via})
    store.hsetnx(f"{PREFIX}:done", key, record)


@celery_app.task(name="poll_task")
def poll_task(task_id: str, key: str) -> None:
    if store.hexists(f"{PREFIX}:done", key):
        return  # the callback short-circuited us
    try:
        resp = client.get(
            f"{SANDBOX}/api/v1/generate/record-info", params={"taskId": task_id}
        ).json()
        status = (resp.get("data") or {}).get("status")
    except (httpx.HTTPError, ValueError):
        status = None
    if status in TERMINAL_OK:
        finish(key, "succeeded", "poll")
    elif status in TERMINAL_FAILED:
        finish(key, "failed", "poll")
    else:
        poll_task.apply_async((task_id, key), countdown=INTERVAL_S)


def main() -> None:
    from _harness import Results, load_spec, serve
    from flask import Flask, request

    spec = load_spec()
    results = Results()
    app = Flask(__name__)

    @app.post("/callback/<key>")
    def callback(key: str):  # type: ignore[no-untyped-def]
        body = request.get_json(force=True, silent=True) or {}
        store.rpush(f"{PREFIX}:callbacks", json.dumps(body))
        with results.lock:
            results.callbacks_acked += 1
        data = body.get("data") or {}
        if body.get("code") != 200:
            finish(key, "failed", "callback")
        elif data.get("callbackType") == "complete":
            finish(key, "succeeded", "callback")
        return {"code": 200, "msg": "success"}

    for name in ("done", "callbacks"):
        store.delete(f"{PREFIX}:{name}")
    store.delete(f"{PREFIX}-polls")
    here = Path(__file__).resolve().parent
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_poll",
            "worker",
            "--pool",
            "threads",
            "-c",
            "8",
            "--loglevel",
            "WARNING",
            "-n",
            f"{PREFIX}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=here,
        env={**os.environ, "PYTHONPATH": str(here)},
        stdout=(spec.out.with_name(f"{spec.name}-worker.log")).open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = serve(app, spec.port)
    try:
        for job in spec.jobs:
            params = {**job["params"], "callBackUrl": f"{spec.public_url}/callback/{job['key']}"}
            for _attempt in range(3):
                try:
                    resp = client.post(f"{SANDBOX}/api/v1/generate", json=params).json()
                    if resp.get("code") == 200:
                        task_id = resp["data"]["taskId"]
                        with results.lock:
                            results.jobs.setdefault(job["key"], {})["task_id"] = task_id
                        poll_task.apply_async((task_id, job["key"]), countdown=INTERVAL_S)
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(INTERVAL_S / 30)
            else:
                finish(job["key"], "failed", "submit")

        def sync() -> None:
            done = store.hgetall(f"{PREFIX}:done")
            for raw_key, raw in done.items():
                key, record = raw_key.decode(), json.loads(raw)
                with results.lock:
                    results.jobs.setdefault(key, {}).update(record)

        keys = [job["key"] for job in spec.jobs]
        deadline = time.monotonic() + spec.timeout_s
        import signal

        signal.signal(signal.SIGTERM, lambda *_: results.stop.set())
        while not results.stop.is_set() and time.monotonic() < deadline:
            sync()
            if not spec.serve and results.done(keys):
                break
            results.stop.wait(0.05)
        sync()
        results.callbacks_stored = int(store.llen(f"{PREFIX}:callbacks"))
        server.shutdown()
        results.write(spec, {"worker_pid": worker.pid})
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        store.delete(f"{PREFIX}-polls")


if __name__ == "__main__":
    main()
