"""A claiming process for the store contract's multi-process test (not a test module).

Usage: ``python claim_worker.py URL OWNER NOW_ISO THREADS GO_FILE``. Opens its own store,
waits until GO_FILE exists (so that every process starts claiming together), then claims
POLL jobs from THREADS threads until none is left, polling each once (an ``apply`` that
clears next_poll_at and releases the lease). Prints ``{"ids": [...], "errors": [...]}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from orchestrator.domain import NewEvent
from orchestrator.stores.base import POLL
from orchestrator.stores.sql import SQLStore


def main() -> int:
    url, owner, now_iso, threads, go_file = sys.argv[1:6]
    now = datetime.fromisoformat(now_iso)
    store = SQLStore(url)
    claimed: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        try:
            while True:
                jobs = store.claim(POLL, name, now, 60.0, 3)
                if not jobs:
                    return
                for job in jobs:
                    polled = {"polls": job.polls + 1, "next_poll_at": None}
                    event = NewEvent("poll", "polled", {"by": name})
                    store.apply(job, polled, event, now, release_owner=name)
                with lock:
                    claimed.extend(job.id for job in jobs)
        except Exception as exc:  # reported to the test, which fails on any
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")

    deadline = time.monotonic() + 30
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = [threading.Thread(target=work, args=(f"{owner}-{i}",)) for i in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    print(json.dumps({"ids": claimed, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
