"""Baseline 2, APScheduler alone: one interval job per task in a SQLAlchemy job store on
SQLite, removed when the task is finished; the Flask callback handler moves the job's next
run to now, so the poll (not the callback) decides the outcome.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import httpx
from _harness import TERMINAL_FAILED, TERMINAL_OK, Results, load_spec, serve, wait_until_done
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, request

spec = load_spec()
results = Results()
app = Flask(__name__)
client = httpx.Client(headers={"Authorization": f"Bearer {spec.api_key}"}, timeout=10)
task_of: dict[str, str] = {}  # job key -> taskId
received: list[dict] = []
db = spec.out.with_name(f"{spec.name}-jobs.sqlite")
db.unlink(missing_ok=True)
scheduler = BackgroundScheduler(
    jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{db}")}, timezone="UTC"
)


def poll(task_id: str, key: str) -> None:
    try:
        resp = client.get(
            f"{spec.sandbox}/api/v1/generate/record-info", params={"taskId": task_id}
        ).json()
    except (httpx.HTTPError, ValueError):
        return
    status = (resp.get("data") or {}).get("status")
    if status in TERMINAL_OK | TERMINAL_FAILED:
        results.finish(key, "succeeded" if status in TERMINAL_OK else "failed", "poll")
        with contextlib.suppress(JobLookupError):
            scheduler.remove_job(task_id)


@app.post("/callback/<key>")
def callback(key: str):  # type: ignore[no-untyped-def]
    body = request.get_json(force=True, silent=True) or {}
    received.append(body)
    with results.lock:
        results.callbacks_acked += 1
        results.callbacks_stored = len(received)
    task_id = task_of.get(key)
    if task_id:
        with contextlib.suppress(JobLookupError):
            scheduler.modify_job(task_id, next_run_time=datetime.now(UTC))
    return {"code": 200, "msg": "success"}


def submit(job: dict) -> None:
    params = {**job["params"], "callBackUrl": f"{spec.public_url}/callback/{job['key']}"}
    for _attempt in range(3):
        try:
            resp = client.post(f"{spec.sandbox}/api/v1/generate", json=params).json()
            if resp.get("code") == 200:
                task_id = resp["data"]["taskId"]
                task_of[job["key"]] = task_id
                with results.lock:
                    results.jobs.setdefault(job["key"], {})["task_id"] = task_id
                scheduler.add_job(
                    poll,
                    "interval",
                    seconds=spec.interval_s,
                    id=task_id,
                    args=[task_id, job["key"]],
                    replace_existing=True,
                    misfire_grace_time=None,
                    coalesce=True,
                )
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(spec.interval_s / 30)
    results.finish(job["key"], "failed", "submit")


scheduler.start()
server = serve(app, spec.port)
for job in spec.jobs:
    submit(job)
wait_until_done(spec, results)
server.shutdown()
scheduler.shutdown(wait=False)
results.write(spec)
