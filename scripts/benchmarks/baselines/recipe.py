"""Baseline 1, the provider's own recipe: a Flask callback receiver plus a loop that polls
every unfinished task every 30 s. State lives in memory (a restart forgets everything).
The callback is trusted: a ``complete`` callback marks the job done at once.
"""

from __future__ import annotations

import threading
import time

import httpx
from _harness import TERMINAL_FAILED, TERMINAL_OK, Results, load_spec, serve, wait_until_done
from flask import Flask, request

spec = load_spec()
results = Results()
tasks: dict[str, str] = {}  # taskId -> job key
app = Flask(__name__)
client = httpx.Client(headers={"Authorization": f"Bearer {spec.api_key}"}, timeout=10)
received: list[dict] = []  # every callback body, in memory


@app.post("/callback/<key>")
def callback(key: str):  # type: ignore[no-untyped-def]
    body = request.get_json(force=True, silent=True) or {}
    received.append(body)
    with results.lock:
        results.callbacks_acked += 1
        results.callbacks_stored = len(received)
    data = body.get("data") or {}
    if body.get("code") != 200:
        results.finish(key, "failed", "callback")
    elif data.get("callbackType") == "complete":
        results.finish(key, "succeeded", "callback")
    return {"code": 200, "msg": "success"}


def submit(job: dict) -> None:
    params = {**job["params"], "callBackUrl": f"{spec.public_url}/callback/{job['key']}"}
    for _attempt in range(3):  # retry a couple of times on errors, like most scripts do
        try:
            resp = client.post(f"{spec.sandbox}/api/v1/generate", json=params).json()
            if resp.get("code") == 200:
                tasks[resp["data"]["taskId"]] = job["key"]
                with results.lock:
                    results.jobs.setdefault(job["key"], {})["task_id"] = resp["data"]["taskId"]
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(spec.interval_s / 30)
    results.finish(job["key"], "failed", "submit")


def poll_loop() -> None:
    while not results.stop.is_set():
        results.stop.wait(spec.interval_s)
        for task_id, key in list(tasks.items()):
            if results.stop.is_set():
                return
            if "state" in results.jobs.get(key, {}):
                continue
            try:
                resp = client.get(
                    f"{spec.sandbox}/api/v1/generate/record-info", params={"taskId": task_id}
                ).json()
            except (httpx.HTTPError, ValueError):
                continue
            status = (resp.get("data") or {}).get("status")
            if status in TERMINAL_OK:
                results.finish(key, "succeeded", "poll")
            elif status in TERMINAL_FAILED:
                results.finish(key, "failed", "poll")


server = serve(app, spec.port)
for job in spec.jobs:
    submit(job)
threading.Thread(target=poll_loop, daemon=True).start()
wait_until_done(spec, results)
server.shutdown()
results.write(spec)
