"""Notifications to the user's application, end to end: the daemon, the sandbox, and a real
receiver on loopback that verifies every request with the ``standardwebhooks`` library."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.acceptance.harness import SONG, Deployment, free_port, submit_song, wait_for
from tests.acceptance.receiver import SECRET, Receiver, notify_config

ENV = "ORCHESTRATOR_TEST_WEBHOOK_SECRET"


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.stop()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SECRET)


def outbox(deployment: Deployment, state: str | None = None) -> list[dict[str, Any]]:
    args = ["notify", "list", "--json", *(["--state", state] if state else [])]
    rows: list[dict[str, Any]] = json.loads(deployment.cli(*args, check=True).stdout)[
        "notifications"
    ]
    return rows


def setup(start_sandbox: Any, deploy: Any, receivers: list[Receiver], **notify: Any) -> Any:
    sandbox = start_sandbox(time_scale=0.02)
    receiver = Receiver(free_port())
    receivers.append(receiver)
    deployment: Deployment = deploy(
        sandbox.url, interval_s=1.0, extra=notify_config(receiver.url, **notify)
    )
    return sandbox, receiver, deployment


def test_every_terminal_job_is_told_signed_and_a_tampered_body_fails(
    start_sandbox: Any, deploy: Any, receivers: list[Receiver]
) -> None:
    _sandbox, receiver, deployment = setup(start_sandbox, deploy, receivers)
    receiver.start()
    submit_song(deployment, "ok-1")
    submit_song(deployment, "ok-2")
    deployment.cli(
        "submit", "generate_music", "--key", "bad", "--params",
        json.dumps({**SONG, "prompt": "a song FAIL_500"}), check=True,
    )  # fmt: skip
    deployment.start_daemon()
    wait_for(lambda: len(receiver.delivered()) >= 3, 60, "three notifications")
    seen = {s.body["data"]["key"]: s for s in receiver.delivered()}
    assert {k: s.body["type"] for k, s in seen.items()} == {
        "ok-1": "job.completed",
        "ok-2": "job.completed",
        "bad": "job.failed",
    }
    assert seen["ok-1"].body["data"]["state"] == "completed"
    assert seen["bad"].body["data"]["error"]["stage"] == "upstream"
    assert len({s.webhook_id for s in receiver.all()}) == len(receiver.all())
    assert all(s.verified for s in receiver.all())
    wait_for(lambda: len(outbox(deployment, "delivered")) == 3, 20, "the outbox to agree")
    assert outbox(deployment, "pending") == [] and outbox(deployment, "dead") == []
    shown = deployment.cli_json("show", "ok-1")
    [told] = shown["notifications"]
    assert told["webhook_id"] == seen["ok-1"].webhook_id and told["state"] == "delivered"
    assert told["attempt_log"][0]["status"] == 204
    # what the receiver's library says of a body changed on the way
    sample = seen["ok-1"]
    tampered = sample.raw.replace(b'"completed"', b'"cancelled"', 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, sample.headers)
    Webhook(SECRET).verify(sample.raw, sample.headers)  # the real one passes
    assert SECRET not in deployment.logs() and SECRET not in json.dumps(shown)


def test_a_receiver_down_for_a_while_gets_it_later_with_the_same_id(
    start_sandbox: Any, deploy: Any, receivers: list[Receiver]
) -> None:
    _sandbox, receiver, deployment = setup(start_sandbox, deploy, receivers)
    submit_song(deployment, "song")
    deployment.start_daemon()  # the receiver is not listening yet
    wait_for(lambda: any(r["attempts"] >= 2 for r in outbox(deployment)), 60, "two failed attempts")
    [pending] = outbox(deployment, "pending")
    receiver.start()
    wait_for(lambda: receiver.delivered(), 30, "the delivery once the receiver is up")
    [delivered] = outbox(deployment, "delivered")
    assert receiver.delivered()[0].webhook_id == pending["webhook_id"] == delivered["webhook_id"]
    assert delivered["attempts"] >= 3
    log = deployment.cli_json("show", "song")["notifications"][0]["attempt_log"]
    assert log[0]["status"] is None and "no answer" in log[0]["error"]
    assert log[-1]["status"] == 204


def test_a_410_disables_the_target_until_it_is_enabled(
    start_sandbox: Any, deploy: Any, receivers: list[Receiver]
) -> None:
    _sandbox, receiver, deployment = setup(start_sandbox, deploy, receivers)
    receiver.default = 410
    receiver.start()
    submit_song(deployment, "first")
    deployment.start_daemon()
    wait_for(lambda: outbox(deployment, "dead"), 60, "the 410 to kill the first one")
    listed = deployment.cli("notify", "list", check=True).stdout
    assert "target app disabled" in listed and "410" in listed
    submit_song(deployment, "second")
    wait_for(lambda: len(outbox(deployment)) == 2, 60, "the second job's notification")
    [held] = outbox(deployment, "pending")
    assert held["attempts"] == 0 and len(receiver.all()) == 1  # no more attempts
    receiver.default = 204
    assert "enabled" in deployment.cli("notify", "enable", "app", check=True).stdout
    wait_for(lambda: outbox(deployment, "delivered"), 90, "the held one, once enabled")
    replayed = deployment.cli("notify", "replay", "--dead", check=True).stdout
    assert replayed.startswith("1 notification(s)")
    wait_for(lambda: len(outbox(deployment, "delivered")) == 2, 30, "the dead one, replayed")
    ids = [s.webhook_id for s in receiver.delivered()]
    assert sorted(ids) == sorted(r["webhook_id"] for r in outbox(deployment))


def test_a_sigkill_between_commit_and_send_still_sends_it(
    start_sandbox: Any, deploy: Any, receivers: list[Receiver]
) -> None:
    _sandbox, receiver, deployment = setup(start_sandbox, deploy, receivers)
    receiver.start()
    submit_song(deployment, "song")
    first = deployment.start_daemon({"ORCHESTRATOR_CRASH_AT": "notify.before_send"})
    assert first.wait(60) == -signal.SIGKILL  # died with the row committed, unsent
    assert receiver.all() == []
    [row] = outbox(deployment, "pending")
    deployment.start_daemon()
    wait_for(lambda: receiver.delivered(), 30, "the delivery after the restart")
    assert {s.webhook_id for s in receiver.all()} == {row["webhook_id"]}
    assert all(s.verified for s in receiver.all())


def test_a_ping_is_signed_and_a_bad_target_name_is_a_clear_error(
    deploy: Any, receivers: list[Receiver]
) -> None:
    receiver = Receiver(free_port()).start()
    receivers.append(receiver)
    deployment: Deployment = deploy("http://127.0.0.1:9", extra=notify_config(receiver.url))
    result = deployment.cli("notify", "test", "app", check=True)
    assert "ping delivered (204)" in result.stdout
    [ping] = receiver.delivered()
    assert ping.body["type"] == "ping" and ping.body["data"] is None
    wrong = deployment.cli("notify", "test", "nope")
    assert wrong.returncode == 2 and "no [[notify]] target named 'nope'" in wrong.stderr


def test_a_pipeline_is_told_once_when_all_of_it_completed(
    start_sandbox: Any, deploy: Any, receivers: list[Receiver]
) -> None:
    from tests.acceptance.test_pipelines import LYRICS_TO_SONG

    sandbox = start_sandbox(time_scale=0.02)
    receiver = Receiver(free_port()).start()
    receivers.append(receiver)
    events = 'events = ["job.completed", "pipeline.completed"]'
    deployment: Deployment = deploy(
        sandbox.url,
        interval_s=1.0,
        extra=notify_config(receiver.url, extra=events),
        jobs=LYRICS_TO_SONG,
    )
    deployment.start_daemon()
    wait_for(
        lambda: any(s.body["type"] == "pipeline.completed" for s in receiver.delivered()),
        60,
        "pipeline.completed",
    )
    kinds = sorted(s.body["type"] for s in receiver.delivered())
    assert kinds == ["job.completed", "job.completed", "pipeline.completed"]
    [told] = [s for s in receiver.delivered() if s.body["type"] == "pipeline.completed"]
    assert told.body["data"]["key"] == "words"
    assert told.body["data"]["pipeline"] == [{"key": "sung", "kind": "generate_music"}]
