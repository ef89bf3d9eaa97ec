"""Notifications to the user's application: which transitions are told to which target, the
body, the retry schedule (pure; the outbox rows are written with the transition, in its
transaction, and :mod:`orchestrator.daemon.notifier` sends them).

A body is ``{"type", "timestamp", "data": <the job JSON>}``; the request follows the Standard
Webhooks specification (``webhook-id`` stable across retries, ``webhook-timestamp``,
``webhook-signature``), signed when the attempt is made (docs/notifications.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from orchestrator.domain import Job, NewNotification
from orchestrator.states import JobState

S = JobState

#: the event types a target may ask for, and the job states that make them
STATE_EVENTS: Final[dict[JobState, str]] = {
    S.SUCCEEDED: "job.succeeded",
    S.COMPLETED: "job.completed",
    S.FAILED: "job.failed",
    S.TIMED_OUT: "job.timed_out",
    S.UNCERTAIN: "job.uncertain",
    S.CANCELLED: "job.cancelled",
}
PROGRESS: Final = "job.progress"  #: an upstream stage reached (TEXT_SUCCESS, FIRST_SUCCESS)
PING: Final = "ping"  #: `notify test`
#: a pipeline's root and every job below it completed (orchestrator.daemon.pipeline_watch)
PIPELINE_COMPLETED: Final = "pipeline.completed"
EVENT_TYPES: Final = frozenset({*STATE_EVENTS.values(), PROGRESS, PIPELINE_COMPLETED})
DEFAULT_EVENTS: Final = ("job.completed", "job.failed", "job.timed_out", "job.uncertain")

#: seconds after the first attempt's due time before each attempt (Svix's schedule): at once,
#: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
DEFAULT_SCHEDULE: Final = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: the whole exchange with a target (connect, send, answer; a command's run), seconds
TIMEOUT_S: Final = 15.0
#: the account record listing targets a 410 disabled: {name: {"at", "reason"}}
DISABLED_RECORD: Final = "notify-disabled"
#: answers that ask the sender to slow down
SLOW_DOWN: Final = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Target:
    """One ``[[notify]]`` entry."""

    name: str
    url: str | None = None
    command: tuple[str, ...] = ()
    #: the environment variable holding the Standard Webhooks secret(s), space-separated
    secret_env: str = ""
    events: tuple[str, ...] = DEFAULT_EVENTS
    #: job kinds told (empty: every kind)
    kinds: tuple[str, ...] = ()
    schedule_s: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1

    def wants(self, event: str, kind: str) -> bool:
        return event in self.events and (not self.kinds or kind in self.kinds)


def new_webhook_id() -> str:
    return "msg_" + secrets.token_hex(12)


def events_of(before: Job, after: Job) -> list[str]:
    """What a transition from ``before`` to ``after`` tells (nothing for a non-change)."""
    found: list[str] = []
    if after.state != before.state and after.state in STATE_EVENTS:
        found.append(STATE_EVENTS[after.state])
    if (
        after.upstream_status != before.upstream_status
        and after.upstream_status in ("TEXT_SUCCESS", "FIRST_SUCCESS")
        and after.state in (S.PENDING, S.RUNNING)
    ):
        found.append(PROGRESS)
    return found


def body_of(event: str, job_json: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    from orchestrator.clock import isoformat

    return {"type": event, "timestamp": isoformat(now), "data": job_json}


def outbox_for(
    targets: Sequence[Target], before: Job, after: Job, now: datetime
) -> list[NewNotification]:
    """The rows the transition ``before -> after`` writes to the outbox."""
    rows: list[NewNotification] = []
    for event in events_of(before, after):
        wanted = [t for t in targets if t.wants(event, after.kind)]
        if not wanted:
            continue
        body = body_of(event, after.to_json(), now)
        for target in wanted:
            rows.append(NewNotification(new_webhook_id(), target.name, event, body, now))
    return rows


def next_delay(
    target: Target, attempts: int, status: int | None, retry_after: float | None, unit: float
) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones (None: no more, the row is
    dead). ``unit`` in [0, 1) draws the jitter (the delay shrinks by up to ``jitter``); an answer
    asking to slow down waits twice as long, and at least its ``Retry-After``."""
    schedule = target.schedule_s
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * (1.0 - target.jitter * unit)
    if status in SLOW_DOWN:
        delay = max(delay * 2.0, retry_after or 0.0, 1.0)
    return delay


def signature(secrets_text: str, webhook_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated (a
    rotation sends both), computed by the standardwebhooks library."""
    from standardwebhooks.webhooks import Webhook

    return " ".join(
        Webhook(secret).sign(webhook_id, timestamp, body) for secret in secrets_text.split()
    )
