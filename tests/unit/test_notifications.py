"""Notifications, pure: which transitions tell which target, the body, the schedule, and a
signature the standardwebhooks library accepts (also during a secret rotation)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orchestrator.domain import Job
from orchestrator.notifications import (
    DEFAULT_SCHEDULE,
    Target,
    events_of,
    next_delay,
    outbox_for,
    signature,
)
from orchestrator.states import JobState

S = JobState
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
JOB = Job(1, "song", "generate_music", "sunoapi", S.RUNNING, {"prompt": "p"}, T0, T0)
APP = Target("app", url="http://127.0.0.1:1/hooks", secret_env="X")


def secret(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes([n]) * 24).decode()


@pytest.mark.parametrize(
    ("to", "event"),
    [
        (S.COMPLETED, "job.completed"),
        (S.FAILED, "job.failed"),
        (S.TIMED_OUT, "job.timed_out"),
        (S.UNCERTAIN, "job.uncertain"),
        (S.SUCCEEDED, "job.succeeded"),
        (S.CANCELLED, "job.cancelled"),
    ],
)
def test_each_state_has_its_event(to: JobState, event: str) -> None:
    assert events_of(JOB, replace(JOB, state=to)) == [event]


def test_no_change_tells_nothing_and_progress_is_a_stage() -> None:
    assert events_of(JOB, replace(JOB, polls=3)) == []
    staged = replace(JOB, upstream_status="FIRST_SUCCESS")
    assert events_of(JOB, staged) == ["job.progress"]


def test_targets_get_what_they_asked_for_with_the_job_json() -> None:
    every = Target("all", url="http://x", events=("job.completed", "job.progress"))
    videos = Target("videos", url="http://y", kinds=("music_video",))
    done = replace(JOB, state=S.COMPLETED, finished_at=T0)
    rows = outbox_for((APP, every, videos), JOB, done, T0)
    assert [(r.target, r.event) for r in rows] == [
        ("app", "job.completed"),
        ("all", "job.completed"),
    ]
    assert rows[0].webhook_id != rows[1].webhook_id and rows[0].webhook_id.startswith("msg_")
    assert rows[0].body["data"] == done.to_json() and rows[0].body["type"] == "job.completed"
    assert outbox_for((APP,), JOB, replace(JOB, state=S.SUCCEEDED), T0) == []  # not asked for


def test_the_default_schedule_is_svix_s_and_then_dead() -> None:
    target = replace(APP, jitter=0.0)
    delays = [next_delay(target, n, 500, None, 0.5) for n in range(1, len(DEFAULT_SCHEDULE) + 1)]
    assert delays == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, None]


def test_slow_down_answers_wait_harder_and_honour_retry_after() -> None:
    target = replace(APP, jitter=0.0)
    assert next_delay(target, 1, 503, None, 0.0) == 10.0
    assert next_delay(target, 1, 429, 120.0, 0.0) == 120.0
    assert next_delay(target, 1, 500, 120.0, 0.0) == 5.0  # Retry-After only when slowed down
    jittered = next_delay(replace(APP, jitter=0.1), 2, 500, None, 0.99)
    assert jittered is not None and 270.0 <= jittered < 300.0


def test_the_signature_verifies_with_the_library_and_with_each_rotated_secret() -> None:
    body = json.dumps({"type": "job.completed", "data": {"key": "song"}})
    now = datetime.now(UTC)
    both = signature(f"{secret(1)} {secret(2)}", "msg_1", now, body)
    assert len(both.split(" ")) == 2 and all(s.startswith("v1,") for s in both.split(" "))
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": both,
    }
    for n in (1, 2):
        assert Webhook(secret(n)).verify(body, headers)["data"]["key"] == "song"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(3)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(1)).verify(body.replace("song", "gnos"), headers)
    stale = {**headers, "webhook-timestamp": str(int((now - timedelta(minutes=10)).timestamp()))}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(1)).verify(body, stale)
