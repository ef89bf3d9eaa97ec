"""A webhook receiver on loopback, as a user's application would run one: every request is
verified with the ``standardwebhooks`` library before it counts. It can be down (not
listening yet), answer a script of statuses or fail at random, and remembers everything it
saw. Used by the acceptance tests and by ``scripts/chaos``."""

from __future__ import annotations

import base64
import json
import random
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"orchestrator-test-secret-0123456789").decode()


@dataclass(frozen=True)
class Seen:
    webhook_id: str
    headers: dict[str, str]
    raw: bytes
    verified: bool
    body: Any
    answered: int


class Receiver:
    def __init__(self, port: int, secret: str = SECRET, fail_rate: float = 0.0) -> None:
        self.port = port
        #: this share of requests is answered 503 (a flaky application)
        self.fail_rate = fail_rate
        self._rng = random.Random(port)
        self.webhook = Webhook(secret)
        self.seen: list[Seen] = []
        #: statuses to answer, in order; then ``default``
        self.script: list[int] = []
        self.default = 204
        #: requests cut off before their body was complete (not counted as seen)
        self.incomplete = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # the sender died mid-request (chaos kills it): as a real server does,
                    # drop the incomplete request; it is no request at all
                    with receiver._lock:
                        receiver.incomplete += 1
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = receiver.webhook.verify(raw, headers)
                    verified = True
                except WebhookVerificationError:
                    body, verified = json.loads(raw or b"null"), False
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                    if receiver._rng.random() < receiver.fail_rate:
                        status = 503
                    if not verified:
                        status = 400
                    receiver.seen.append(
                        Seen(headers.get("webhook-id", ""), headers, raw, verified, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Seen]:
        """What it accepted: verified and answered 2xx."""
        with self._lock:
            return [s for s in self.seen if s.verified and 200 <= s.answered < 300]

    def all(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)


def notify_config(
    url: str, *, schedule: str = "[0, 0.5, 1, 1, 1, 1, 1, 1]", extra: str = ""
) -> str:
    return f"""
[[notify]]
name = "app"
url = "{url}"
secret_env = "ORCHESTRATOR_TEST_WEBHOOK_SECRET"
retry_schedule_s = {schedule}
{extra}
"""
