"""SIGTERM and SIGINT as a stop request, from the first moment of `orchestrator run`.

A supervisor (systemd, the chaos soak, a test) may send SIGTERM while the daemon is still
importing its modules or opening the database. Python's default action would kill it then
(exit -15) with nothing released; installed first, this handler turns the signal into a set
:class:`threading.Event` that the daemon honours as soon as it can: before it starts, it
does not start; once it runs, it stops cleanly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from orchestrator.logs import get_logger

log = get_logger("orchestrator.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``stop.set()``; returns a function that restores the
    previous handlers."""

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _signal) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
