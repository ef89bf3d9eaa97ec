"""Helpers for tests and benchmarks that drive the sandbox over real HTTP on loopback.

- :class:`CallbackReceiver`: a tiny callback receiver that records every POST and answers
  from a script (``[500, 500]`` then 200 ...), optionally slowly;
- :class:`SandboxClient`: an httpx client with the bearer key and short-hand kinds;
- :func:`wait_until`: poll a condition with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

import httpx

from orchestrator.sandbox.delivery import default_ssl_context

T = TypeVar("T")

#: short kind names -> submit paths
SUBMIT_PATHS: dict[str, str] = {
    "generate": "/api/v1/generate",
    "extend": "/api/v1/generate/extend",
    "replace": "/api/v1/generate/replace-section",
    "mp4": "/api/v1/mp4/generate",
    "wav": "/api/v1/wav/generate",
    "vocal": "/api/v1/vocal-removal/generate",
}
#: short kind names -> record-info paths
DETAIL_PATHS: dict[str, str] = {
    "generate": "/api/v1/generate/record-info",
    "extend": "/api/v1/generate/record-info",
    "replace": "/api/v1/generate/record-info",
    "mp4": "/api/v1/mp4/record-info",
    "wav": "/api/v1/wav/record-info",
    "vocal": "/api/v1/vocal-removal/record-info",
}
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {
        "SUCCESS",
        "CREATE_TASK_FAILED",
        "GENERATE_AUDIO_FAILED",
        "GENERATE_MP4_FAILED",
        "GENERATE_WAV_FAILED",
        "SENSITIVE_WORD_ERROR",
        "CALLBACK_EXCEPTION",
    }
)


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.01
) -> T:
    """Poll ``predicate`` until it returns something truthy and return it.

    Raises :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass(frozen=True)
class Received:
    """One callback as the receiver got it."""

    time: float
    path: str
    headers: dict[str, str]
    raw: bytes
    #: the status the receiver answered
    status: int

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def task_id(self) -> str | None:
        body = self.body
        data = body.get("data") if isinstance(body, dict) else None
        # lyrics callbacks say taskId
        value = (data.get("task_id") or data.get("taskId")) if isinstance(data, dict) else None
        return value if isinstance(value, str) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: bursts of callbacks must not overflow the listen backlog (the default 5 makes the
    #: kernel drop SYNs, and the sender retries them a second later)
    request_queue_size = 128


class CallbackReceiver:
    """A callback receiver on 127.0.0.1 (a random port): records, answers from a script."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        #: statuses answered in order; when empty, ``default_status``
        self.script: list[int] = []
        self.default_status = 200
        #: seconds to wait before answering (to exceed the sandbox's callback timeout)
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="callback-receiver",
            daemon=True,
        )
        self._thread.start()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.default_status
                    receiver.received.append(
                        Received(time.time(), self.path, dict(self.headers.items()), raw, status)
                    )
                    delay = receiver.delay_s
                if delay:
                    time.sleep(delay)
                payload = b'{"status": "received"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the sender stopped waiting (timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def items(self, task_id: str | None = None) -> list[Received]:
        with self._lock:
            items = list(self.received)
        return [item for item in items if task_id is None or item.task_id == task_id]

    def bodies(self, task_id: str | None = None) -> list[Any]:
        return [item.body for item in self.items(task_id)]

    def wait_for(self, count: int, task_id: str | None = None, timeout: float = 5.0) -> list[Any]:
        """The bodies received (for ``task_id``) once there are at least ``count``."""

        def enough() -> list[Any] | None:
            bodies = self.bodies(task_id)
            return bodies if len(bodies) >= count else None

        return wait_until(enough, timeout=timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def generate_body(callback_url: str, **overrides: Any) -> dict[str, Any]:
    """A valid non-custom generate request; ``overrides`` replace or add fields."""
    body: dict[str, Any] = {
        "customMode": False,
        "instrumental": False,
        "model": "V4_5",
        "prompt": "a calm piano piece at night",
        "callBackUrl": callback_url,
    }
    body.update(overrides)
    return body


class SandboxClient:
    """An httpx client for one sandbox, with the bearer key and short-hand kinds."""

    def __init__(self, base_url: str, api_key: str = "sandbox-key", timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            verify=default_ssl_context(),
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def submit(self, kind: str, body: Any) -> httpx.Response:
        return self.client.post(SUBMIT_PATHS[kind], json=body)

    def submit_ok(self, kind: str, body: Any) -> str:
        """Submit and return the taskId; AssertionError on anything but code 200."""
        response = self.submit(kind, body)
        envelope = response.json()
        if response.status_code != 200 or envelope.get("code") != 200:
            raise AssertionError(f"submit refused: {response.status_code} {envelope}")
        task_id = envelope["data"]["taskId"]
        assert isinstance(task_id, str)
        return task_id

    def detail(self, kind: str, task_id: str) -> httpx.Response:
        return self.client.get(DETAIL_PATHS[kind], params={"taskId": task_id})

    def record(self, kind: str, task_id: str) -> dict[str, Any]:
        response = self.detail(kind, task_id)
        envelope = response.json()
        if response.status_code != 200 or envelope.get("code") != 200:
            raise AssertionError(f"record-info refused: {response.status_code} {envelope}")
        data = envelope["data"]
        assert isinstance(data, dict)
        return data

    @staticmethod
    def status_of(record: dict[str, Any]) -> str:
        return str(record.get("status") or record.get("successFlag"))

    def wait_status(
        self,
        kind: str,
        task_id: str,
        statuses: set[str] | frozenset[str] = TERMINAL_STATUSES,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Poll record-info until its status is one of ``statuses``; return the record."""

        def check() -> dict[str, Any] | None:
            record = self.record(kind, task_id)
            return record if self.status_of(record) in statuses else None

        return wait_until(check, timeout=timeout)

    def generate(self, callback_url: str, **overrides: Any) -> str:
        return self.submit_ok("generate", generate_body(callback_url, **overrides))

    def finished_song(
        self, callback_url: str, timeout: float = 5.0, **overrides: Any
    ) -> tuple[str, dict[str, Any]]:
        """Submit a generate task, wait until it succeeded; its taskId and record."""
        task_id = self.generate(callback_url, **overrides)
        record = self.wait_status("generate", task_id, {"SUCCESS", "CALLBACK_EXCEPTION"}, timeout)
        return task_id, record

    def ledger(self) -> dict[str, Any]:
        """``GET /_sandbox/ledger``."""
        ledger = self.client.get("/_sandbox/ledger").json()
        assert isinstance(ledger, dict)
        return ledger

    def credits(self) -> int:
        value = self.client.get("/api/v1/generate/credit").json()["data"]
        assert isinstance(value, int)
        return value
