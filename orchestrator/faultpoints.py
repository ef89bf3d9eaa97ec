"""Named crash points for durability tests.

``ORCHESTRATOR_CRASH_AT=<point>[:<n>]`` makes the process SIGKILL itself the n-th time (default
the first) it reaches ``point``. Nothing happens when the variable is unset, which is always the
case outside tests. docs/durability.md lists every point and what a crash there must leave.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_lock = threading.Lock()
_hits: dict[str, int] = {}


def reach(point: str) -> None:
    spec = os.environ.get("ORCHESTRATOR_CRASH_AT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        count = _hits[point]
    if count >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)


def linger(point: str) -> None:
    """``ORCHESTRATOR_LINGER_AT=<point>:<seconds>`` makes the process sleep there (a test
    widens a race window with it, e.g. to run several upgrades inside one another)."""
    spec = os.environ.get("ORCHESTRATOR_LINGER_AT")
    if not spec:
        return
    name, _, seconds = spec.partition(":")
    if name == point:
        time.sleep(float(seconds or 0))
