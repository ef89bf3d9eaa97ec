"""The notifier: sends the outbox to the user's application, at least once.

Rows are written in the transaction of the transition that causes them (the reconciler's
``outbox``); this loop leases due rows (one sender per row, also across daemons), signs each
attempt per the Standard Webhooks specification, POSTs it (or runs the target's command with
the body on stdin) and records the answer. 2xx (exit 0) is delivered; 410 disables the target
until ``notify enable``; 429/502/503/504 back off harder and honour ``Retry-After``; anything
else retries on the target's schedule, and after its last step the row is dead. Redirects are
not followed. A crash between a transition's commit and the send sends it after the restart:
the receiver may see a ``webhook-id`` twice, never a notification for a change that did not
commit.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

import httpx

from orchestrator import __version__, faultpoints
from orchestrator.clock import isoformat
from orchestrator.daemon.inflight import InFlight
from orchestrator.domain import Notification, NotificationAttempt, NotificationState
from orchestrator.exceptions import ConfigError
from orchestrator.jsonvalues import dumps_strict
from orchestrator.logs import get_logger, register_secret
from orchestrator.metrics import METRICS
from orchestrator.notifications import (
    DISABLED_RECORD,
    TIMEOUT_S,
    Target,
    next_delay,
    signature,
)
from orchestrator.providers.timestamps import parse_retry_after
from orchestrator.stores.base import Store

log = get_logger("orchestrator.notifier")

#: how soon a row of a disabled target is looked at again (no attempt is made)
DISABLED_RECHECK_S: Final = 60.0
USER_AGENT: Final = f"orchestrator-notify/{__version__}"
#: how much of an answer is kept in the attempt's error (the receiver's words)
ANSWER_CHARS: Final = 200


def load_secrets(targets: tuple[Target, ...]) -> dict[str, str]:
    """Each target's secret(s) from its environment variable: ``whsec_`` + base64, several
    space-separated during a rotation. A ConfigError names the variable, never the value."""
    import base64
    import binascii

    found: dict[str, str] = {}
    for target in targets:
        if not target.secret_env:
            continue
        text = os.environ.get(target.secret_env, "").strip()
        if not text:
            raise ConfigError(
                f"[[notify]] {target.name}: environment variable {target.secret_env} is not set"
            )
        for secret in text.split():
            try:
                key = base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
            except binascii.Error:
                key = b""
            if not secret.startswith("whsec_") or len(key) < 16:
                raise ConfigError(
                    f"[[notify]] {target.name}: {target.secret_env} must hold Standard Webhooks "
                    "secrets: whsec_ followed by base64 of at least 16 bytes, space-separated"
                )
            register_secret(secret)
        found[target.name] = text
    return found


@dataclass(frozen=True)
class Answer:
    status: int | None  #: HTTP status, or a command's exit code; None: no answer
    error: str | None
    retry_after: float | None = None
    #: 2xx from a URL, exit 0 from a command
    delivered: bool = False


class Notifier:
    def __init__(
        self,
        store: Store,
        targets: tuple[Target, ...],
        secrets: Mapping[str, str],
        *,
        client: httpx.Client,
        executor: ThreadPoolExecutor,
        concurrency: int,
        owner: str,
        lease_s: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.secrets = dict(secrets)
        self.client = client
        self.inflight = InFlight(executor, "notify")
        self.concurrency = concurrency
        self.owner = owner
        self.lease_s = lease_s
        self.clock = clock
        self.stop = stop

    def tick(self) -> int:
        """Lease what the pool can take now and send it. Returns how many were started."""
        if self.stop.is_set():
            return 0
        room = self.concurrency - self.inflight.count()
        if room <= 0:
            return 0
        started = 0
        for row in self.store.claim_notifications(self.owner, self.clock(), self.lease_s, room):
            if self.inflight.start(row.id, partial(self.send, row)):
                started += 1
        return started

    def disabled(self) -> dict[str, Any]:
        return dict(self.store.account(DISABLED_RECORD) or {})

    def send(self, row: Notification) -> NotificationState:
        """One attempt at one leased row; returns the row's state after it."""
        now = self.clock()
        target = self.targets.get(row.target)
        if target is None:
            answer = Answer(None, f"target {row.target!r} is no longer configured")
            return self._finish(row, answer, NotificationState.DEAD, None, 0.0)
        if target.name in self.disabled():
            later = now + timedelta(seconds=DISABLED_RECHECK_S)
            self.store.finish_notification(
                row.id, self.owner, None, NotificationState.PENDING, later
            )
            return NotificationState.PENDING
        faultpoints.reach("notify.before_send")
        answer, took = deliver(self.client, target, self.secrets.get(target.name), row, self.clock)
        if answer.delivered:
            log.info("notification_delivered", id=row.webhook_id, target=target.name)
            return self._finish(row, answer, NotificationState.DELIVERED, None, took)
        if target.url is not None and answer.status == 410:
            self._disable(target.name, "the receiver answered 410 Gone")
            return self._finish(row, answer, NotificationState.DEAD, None, took)
        unit = random.Random(f"{row.webhook_id}:{row.attempts}").random()
        delay = next_delay(target, row.attempts + 1, answer.status, answer.retry_after, unit)
        if delay is None:
            log.warning("notification_dead", id=row.webhook_id, target=target.name)
            return self._finish(row, answer, NotificationState.DEAD, None, took)
        due = self.clock() + timedelta(seconds=delay)
        log.info(
            "notification_retry",
            id=row.webhook_id,
            target=target.name,
            status=answer.status,
            in_s=round(delay, 1),
        )
        return self._finish(row, answer, NotificationState.PENDING, due, took)

    def _finish(
        self,
        row: Notification,
        answer: Answer,
        state: NotificationState,
        due: datetime | None,
        took: float,
    ) -> NotificationState:
        attempt = NotificationAttempt(self.clock(), answer.status, answer.error, took)
        METRICS.notifications.labels(row.target, state.value).inc()
        if not self.store.finish_notification(row.id, self.owner, attempt, state, due):
            log.info("notification_lease_lost", id=row.webhook_id)
        return state

    def _disable(self, name: str, reason: str) -> None:
        disabled = self.disabled()
        disabled[name] = {"at": isoformat(self.clock()), "reason": reason}
        self.store.set_account(DISABLED_RECORD, disabled, self.clock())
        log.warning("notify_target_disabled", target=name, reason=reason)


def deliver(
    client: httpx.Client,
    target: Target,
    secret: str | None,
    row: Notification,
    clock: Callable[[], datetime],
) -> tuple[Answer, float]:
    """One attempt: sign (per Standard Webhooks, at the attempt's time) and POST the row's
    body to the target, or run its command with the body on stdin and the headers as
    environment variables. Returns the answer and how long it took."""
    body = dumps_strict(row.body)  # the exact bytes signed and sent
    sent_at = clock()
    headers = {"webhook-id": row.webhook_id, "webhook-timestamp": str(int(sent_at.timestamp()))}
    if secret:
        headers["webhook-signature"] = signature(secret, row.webhook_id, sent_at, body)
    started = time.monotonic()
    if target.url is not None:
        answer = _post(client, target.url, body, headers, sent_at)
    else:
        answer = _run(target.command, body, headers, row.event)
    return answer, time.monotonic() - started


def _post(
    client: httpx.Client, url: str, body: str, headers: dict[str, str], now: datetime
) -> Answer:
    try:
        with client.stream(
            "POST",
            url,
            content=body.encode("utf-8"),
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        ) as response:
            text = ""
            if not 200 <= response.status_code < 300:
                text = _head(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            ok = 200 <= response.status_code < 300
            error = None if ok else f"HTTP {response.status_code}"
            if text:
                error = f"{error}: {text}"
            return Answer(response.status_code, error, retry_after, delivered=ok)
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: no answer from the receiver")


def _run(command: tuple[str, ...], body: str, headers: dict[str, str], event: str) -> Answer:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WEBHOOK_ID": headers["webhook-id"],
        "WEBHOOK_TIMESTAMP": headers["webhook-timestamp"],
        "WEBHOOK_SIGNATURE": headers.get("webhook-signature", ""),
        "WEBHOOK_TYPE": event,
    }
    try:
        # the operator's own command from the config, never upstream or receiver text
        done = subprocess.run(  # noqa: S603
            list(command),
            input=body.encode("utf-8"),
            env=env,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Answer(None, f"the command ran over {TIMEOUT_S:g} s")
    except OSError as exc:
        return Answer(None, f"the command could not run: {exc.strerror}")
    if done.returncode == 0:
        return Answer(0, None, delivered=True)
    tail = done.stderr.decode("utf-8", "replace").strip()[-ANSWER_CHARS:]
    return Answer(done.returncode, f"exit {done.returncode}" + (f": {tail}" if tail else ""))


def _head(response: httpx.Response) -> str:
    """The start of a refusal's body, as one printable line."""
    taken = b""
    for chunk in response.iter_bytes():
        taken += chunk
        if len(taken) >= ANSWER_CHARS:
            break
    text = taken[:ANSWER_CHARS].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def http_client() -> httpx.Client:
    """The notifier's own client: no redirects, 15 s in all (5 to connect, 10 for the rest)."""
    return httpx.Client(
        follow_redirects=False,
        timeout=httpx.Timeout(10.0, connect=5.0),
        headers={"User-Agent": USER_AGENT},
    )
