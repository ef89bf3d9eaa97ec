"""Sliding-window limits: the real 20 submits per 10 s per key, optional polls per task."""

from __future__ import annotations

import threading
from collections import deque


class SlidingWindow:
    """Admit at most ``limit`` events per ``window_s`` seconds per key; refusals don't count."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, now: float) -> bool:
        """Record an event for ``key`` and return True, or return False when over the limit."""
        if self.limit <= 0:
            return True
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may be admitted again (0 when it may now)."""
        with self._lock:
            events = self._events.get(key)
            if not events or len(events) < self.limit:
                return 0.0
            return max(0.0, events[0] + self.window_s - now)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
