"""Callback delivery: one scheduler thread with a heap of due deliveries, a few senders.

Each delivery is POSTed as JSON to the task's ``callBackUrl``. An attempt fails on a non-2xx
answer, a timeout or a connection error; a failed attempt is retried after
``5 s * 2**(attempt-1)`` (scaled by the time scale: 5 s, then 10 s), up to 3 attempts, then
the delivery gives up for good. The HTTP timeout of an attempt is *not* scaled: it is 15 s for
music video, WAV and vocal removal, 10 s for the music family, unless the config overrides it.

Sending happens on a small pool of threads so that one slow receiver does not hold back every
other task's callbacks; scheduling (what is due when) stays on the one scheduler thread.

kie.ai signing (when an ``hmac_key`` is set): ``X-Webhook-Timestamp`` is the unix time in
seconds of the attempt, ``X-Webhook-Signature`` is
``base64(HMAC-SHA256(key, task_id + "." + timestamp))``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import heapq
import hmac
import itertools
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import httpx

from orchestrator.sandbox.ledger import Ledger, stamp

MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 5.0
USER_AGENT = "orchestrator-sandbox-callback/1.0"


@cache
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client (building one costs ~50 ms)."""
    return ssl.create_default_context()


@dataclass(frozen=True)
class Delivery:
    """One copy of one stage's callback, at one attempt."""

    task_id: str
    stage_index: int
    #: callbackType (text, first, complete, error) or complete/error for single-callback kinds
    stage: str
    url: str
    timeout_s: float
    #: the stage is the task's terminal one
    terminal: bool
    copy: int = 1
    attempt: int = 1
    early: bool = False


def sign(key: str, task_id: str, timestamp: str) -> str:
    """kie.ai's callback signature: base64(HMAC-SHA256(key, task_id + "." + timestamp))."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def backoff_s(attempt: int, time_scale: float) -> float:
    """Wait after failed attempt ``attempt`` (1-based) before the next one."""
    return BACKOFF_BASE_S * 2.0 ** (attempt - 1) * time_scale


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    delivery: Delivery = field(compare=False)


class CallbackDelivery:
    """Schedules, sends, retries and records callbacks."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        build_body: Callable[[Delivery], dict[str, Any] | None],
        on_give_up: Callable[[Delivery, float], None],
        clock: Callable[[], float],
        time_scale: float,
        hmac_key: str | None = None,
        workers: int = 8,
    ) -> None:
        self._ledger = ledger
        self._build_body = build_body
        self._on_give_up = on_give_up
        self._clock = clock
        self._time_scale = time_scale
        self._hmac_key = hmac_key
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="sandbox-callback"
        )
        self._inflight: set[concurrent.futures.Future[None]] = set()
        self._client = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            verify=default_ssl_context(),
        )

    # -- scheduling ---------------------------------------------------------------------
    def schedule(self, delivery: Delivery, due: float) -> None:
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._heap, _Due(due, next(self._seq), delivery))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-callback-scheduler", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def clear(self) -> None:
        """Forget every scheduled delivery (``/_sandbox/reset``)."""
        with self._cond:
            self._heap.clear()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def deliver_now(self, delivery: Delivery) -> None:
        """Make the first attempt in the caller's thread (the ``early`` fault)."""
        self._attempt(delivery)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = self._clock()
                    if self._heap and self._heap[0].due <= now:
                        break
                    timeout = self._heap[0].due - now if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                item = heapq.heappop(self._heap)
            self._dispatch(item.delivery)

    def _dispatch(self, delivery: Delivery) -> None:
        try:
            future = self._executor.submit(self._attempt, delivery)
        except RuntimeError:  # executor shut down: we are closing
            return
        with self._cond:
            self._inflight.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._cond:
            self._inflight.discard(future)

    # -- sending ------------------------------------------------------------------------
    def _attempt(self, delivery: Delivery) -> None:
        try:
            self._send(delivery)
        except Exception:  # never let a sender thread die on an unexpected error
            return

    def _send(self, delivery: Delivery) -> None:
        if self._closed:
            return
        body = self._build_body(delivery)
        if body is None:  # the task is gone (sandbox reset)
            return
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        started = self._clock()
        if self._hmac_key is not None:
            timestamp = str(int(started))
            headers["X-Webhook-Timestamp"] = timestamp
            headers["X-Webhook-Signature"] = sign(self._hmac_key, delivery.task_id, timestamp)
        entry: dict[str, Any] = {
            "taskId": delivery.task_id,
            "stage": delivery.stage,
            "copy": delivery.copy,
            "attempt": delivery.attempt,
            "url": delivery.url,
            "early": delivery.early,
            "signed": self._hmac_key is not None,
            "code": body.get("code"),
            **stamp(started),
        }
        ok = False
        try:
            response = self._client.post(
                delivery.url, content=raw, headers=headers, timeout=delivery.timeout_s
            )
            entry["status"] = response.status_code
            ok = 200 <= response.status_code < 300
        except Exception as exc:  # timeout, refused, reset, closed client ...
            entry["error"] = type(exc).__name__
        finished = self._clock()
        entry["elapsed_s"] = round(finished - started, 6)
        entry["ok"] = ok
        gave_up = not ok and delivery.attempt >= MAX_ATTEMPTS
        entry["gave_up"] = gave_up
        self._ledger.callback_attempt(entry)
        if ok:
            return
        if gave_up:
            self._on_give_up(delivery, finished)
            return
        retry = replace(delivery, attempt=delivery.attempt + 1, early=False)
        self.schedule(retry, finished + backoff_s(delivery.attempt, self._time_scale))

    # -- lifecycle ----------------------------------------------------------------------
    def close(self, grace_s: float = 2.0) -> None:
        """Stop: drop what is scheduled, wait a little for attempts in flight, close."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
            inflight = set(self._inflight)
        if thread is not None:
            thread.join(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        running = {future for future in inflight if not future.done()}  # not the cancelled
        if running:
            concurrent.futures.wait(running, timeout=grace_s)
        self._client.close()
