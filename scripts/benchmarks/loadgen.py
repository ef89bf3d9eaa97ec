"""Callback load generator: threads POSTing valid callbacks over keep-alive connections.

``python loadgen.py --targets targets.json --duration 5 --threads 8 --out out.json``;
targets is a list of ``{"url", "task_id"}``. Bounded by ``--duration`` and ``--max``.
Writes the count of 2xx answers, errors, and every request's latency in ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


def body(task_id: str) -> bytes:
    data = {"callbackType": "text", "task_id": task_id, "data": []}
    return json.dumps({"code": 200, "msg": "Text generation completed.", "data": data}).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", required=True)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max", type=int, default=200_000)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    targets = json.loads(Path(args.targets).read_text())
    lock = threading.Lock()
    acked = [0]
    errors = [0]
    latencies: list[float] = []
    counter = [args.offset]
    deadline = time.monotonic() + args.duration

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        mine: list[float] = []
        ok = bad = 0
        while time.monotonic() < deadline:
            with lock:
                n = counter[0]
                counter[0] += 1
            if n - args.offset >= args.max:
                break
            target = targets[n % len(targets)]
            parts = urlsplit(target["url"])
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                started = time.perf_counter()
                conn.request(
                    "POST",
                    parts.path,
                    body=body(target["task_id"]),
                    headers={"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                mine.append((time.perf_counter() - started) * 1000)
                if 200 <= resp.status < 300:
                    ok += 1
                else:
                    bad += 1
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                bad += 1
                if conn is not None:
                    conn.close()
                conn = None
        with lock:
            acked[0] += ok
            errors[0] += bad
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.duration + 30)
    elapsed = time.monotonic() - started
    Path(args.out).write_text(
        json.dumps(
            {
                "acked": acked[0],
                "errors": errors[0],
                "elapsed_s": elapsed,
                "latencies_ms": latencies,
            }
        )
    )


if __name__ == "__main__":
    main()
