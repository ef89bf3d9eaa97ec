"""A command target: the body on stdin, the headers as environment variables, exit 0 is
delivered, anything else retries; and the secrets a target needs are checked at start."""

from __future__ import annotations

import base64
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from orchestrator.daemon.notifier import Notifier, load_secrets
from orchestrator.domain import NewNotification, NotificationState
from orchestrator.exceptions import ConfigError
from orchestrator.notifications import Target
from orchestrator.stores.memory import MemoryStore

NOW = datetime.now(UTC)
SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
SCRIPT = """
import json, os, sys
body = sys.stdin.read()
out = {"body": body, "env": {k: v for k, v in os.environ.items() if k.startswith("WEBHOOK_")}}
open(sys.argv[1], "w").write(json.dumps(out))
sys.exit(int(sys.argv[2]))
"""


def run_once(tmp_path: Path, exit_code: int) -> tuple[NotificationState, dict[str, object]]:
    out = tmp_path / "seen.json"
    target = Target("local", command=(sys.executable, "-c", SCRIPT, str(out), str(exit_code)))
    store = MemoryStore()
    body = {"type": "job.completed", "timestamp": "t", "data": {"key": "k"}}
    store.add_notifications([NewNotification("msg_1", "local", "job.completed", body, NOW)], NOW)
    with httpx.Client() as client:
        from concurrent.futures import ThreadPoolExecutor

        notifier = Notifier(
            store, (target,), {"local": SECRET}, client=client,
            executor=ThreadPoolExecutor(1), concurrency=1, owner="me", lease_s=30.0,
            clock=lambda: datetime.now(UTC), stop=threading.Event(),
        )  # fmt: skip
        [row] = store.claim_notifications("me", NOW, 30.0, 1)
        state = notifier.send(row)
    return state, json.loads(out.read_text())


def test_a_command_gets_the_body_on_stdin_and_the_signed_headers_in_its_environment(
    tmp_path: Path,
) -> None:
    state, seen = run_once(tmp_path, 0)
    assert state == NotificationState.DELIVERED
    env = seen["env"]
    assert isinstance(env, dict) and env["WEBHOOK_ID"] == "msg_1"
    assert env["WEBHOOK_TYPE"] == "job.completed"
    headers = {
        "webhook-id": env["WEBHOOK_ID"],
        "webhook-timestamp": env["WEBHOOK_TIMESTAMP"],
        "webhook-signature": env["WEBHOOK_SIGNATURE"],
    }
    assert Webhook(SECRET).verify(str(seen["body"]), headers)["data"]["key"] == "k"


def test_a_command_that_fails_is_retried(tmp_path: Path) -> None:
    state, _seen = run_once(tmp_path, 3)
    assert state == NotificationState.PENDING


@pytest.mark.parametrize("value", ["", "plain-text", "whsec_", "whsec_" + "a" * 4, f"{SECRET} x"])
def test_a_bad_secret_stops_the_start_naming_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HOOK_SECRET", value)
    target = Target("app", url="http://127.0.0.1:1/", secret_env="HOOK_SECRET")
    with pytest.raises(ConfigError) as caught:
        load_secrets((target,))
    assert "HOOK_SECRET" in str(caught.value)
    if value.strip():
        assert value.split()[-1] not in str(caught.value) or value.split()[-1] == "whsec_"


def test_two_secrets_during_a_rotation_are_both_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    other = "whsec_" + base64.b64encode(b"z" * 24).decode()
    monkeypatch.setenv("HOOK_SECRET", f"{SECRET} {other}")
    target = Target("app", url="http://127.0.0.1:1/", secret_env="HOOK_SECRET")
    assert load_secrets((target,)) == {"app": f"{SECRET} {other}"}
