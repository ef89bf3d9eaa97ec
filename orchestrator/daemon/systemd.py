"""systemd's notify protocol (``Type=notify``), without a dependency: READY=1 once the daemon
serves, WATCHDOG=1 while its loops tick (``WatchdogSec=``), STOPPING=1 on the way out.
Nothing happens outside systemd (no ``NOTIFY_SOCKET``)."""

from __future__ import annotations

import os
import socket

from orchestrator.logs import get_logger

log = get_logger("orchestrator.systemd")


def notify(message: str) -> bool:
    """Send ``message`` to systemd; False when not under systemd (or the socket is gone)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("ascii"))
    except OSError as exc:
        log.warning("sd_notify_failed", error=exc.strerror)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to pet systemd's watchdog (half its ``WatchdogSec``), or None without one."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.1, int(usec) / 2_000_000)
    except ValueError:
        return None
