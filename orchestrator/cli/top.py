"""`orchestrator top`: a live terminal view of the daemon's database: jobs per state, the last
minute's rates (submits, polls, callbacks, notifications), the upstream breaker (from the
daemon's /healthz when it answers on this host) and the latest transitions. `q` quits."""

from __future__ import annotations

import contextlib
import select
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.api import Orchestrator
from orchestrator.clock import isoformat, utcnow
from orchestrator.config import parse_listen
from orchestrator.states import JobState

#: event types counted as each rate
RATES = {
    "submits": ("submit_started",),
    "polls": ("polled", "poll_failed"),
    "callbacks": ("callback_received", "callback_rejected"),
}
REFRESH_S = 1.0


def frame(orc: Orchestrator) -> Group:
    now = utcnow()
    counts = orc.store.count_by_state()
    states = Table(title="jobs", show_edge=False, pad_edge=False)
    for state in JobState:
        states.add_column(state.value, justify="right")
    states.add_row(*[str(counts.get(state, 0)) for state in JobState])
    recent = orc.store.recent_events(now - timedelta(minutes=1), limit=20_000)
    kinds = Counter(e.type for e in recent)
    rates = Table(title="last minute", show_edge=False, pad_edge=False)
    for name in (*RATES, "notifications"):
        rates.add_column(name, justify="right")
    delivered = sum(
        1 for n in orc.notifications(state="delivered")
        if n.delivered_at and n.delivered_at >= now - timedelta(minutes=1)
    )  # fmt: skip
    rates.add_row(*[str(sum(kinds[t] for t in types)) for types in RATES.values()], str(delivered))
    latest = Table(title="latest transitions", show_edge=False, pad_edge=False)
    for column in ("at", "job", "from", "to", "note"):
        latest.add_column(column)
    moved = [e for e in recent if e.to_state is not None and e.from_state != e.to_state][-10:]
    keys: dict[int, str] = {}
    for event in reversed(moved):
        if event.job_id not in keys:
            keys[event.job_id] = orc.store.get_job(event.job_id).key
        latest.add_row(
            (isoformat(event.at) or "")[11:19],
            keys[event.job_id],
            event.from_state.value if event.from_state else "",
            event.to_state.value if event.to_state else "",
            event.note[:60],
        )
    return Group(Text(f"orchestrator top  {isoformat(now)}  {_breaker(orc)}"), states, rates,
                 latest, Text("q quits"))  # fmt: skip


def _breaker(orc: Orchestrator) -> str:
    try:
        host, port = parse_listen(orc.settings.callbacks.listen)
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a wildcard: ask loopback)
        body: Any = httpx.get(f"http://{host}:{port}/healthz", timeout=0.5).json()
    except Exception:
        return "daemon: not answering on this host"
    upstream = body.get("upstream") or {}
    return f"daemon: up, breaker {upstream.get('breaker', '?')}"


@contextlib.contextmanager
def _keys() -> Iterator[None]:
    """Single keys without Enter while the view runs (when stdin is a terminal)."""
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setcbreak(sys.stdin.fileno())
        yield
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def _pressed_q(wait_s: float) -> bool:
    if not sys.stdin.isatty():
        time.sleep(wait_s)
        return False
    ready, _, _ = select.select([sys.stdin], [], [], wait_s)
    return bool(ready) and sys.stdin.read(1).lower() == "q"


def run_top(orc: Orchestrator, *, once: bool = False) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)
    if once:
        console.print(frame(orc))
        return 0
    with _keys(), Live(frame(orc), console=console, screen=False, auto_refresh=False) as live:
        while not _pressed_q(REFRESH_S):
            live.update(frame(orc), refresh=True)
    return 0
