"""Security end to end: a kie sandbox that signs callbacks, the daemon verifying them, a
forged signed callback contradicted by record-info, and no secret anywhere in what the
daemon and the CLI print or record.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from orchestrator.web.callback_auth import sign
from tests.acceptance.harness import Deployment, submit_song, wait_for

pytestmark = pytest.mark.timeout(180)

API_KEY = "acceptance-api-key-7f3c9e1b2d"
HMAC_KEY = "acceptance-hmac-key-5a8d2c4e6f"
HMAC_ENV = "ORCHESTRATOR_TEST_HMAC_KEY"


def _kie_deployment(deploy: Any, upstream: str) -> Deployment:
    deployment: Deployment = deploy(upstream, interval_s=1.0)
    text = deployment.config.read_text()
    text = text.replace('profile = "sunoapi"', 'profile = "kie"')
    text = text.replace('mode = "verify"', f'mode = "verify"\nhmac_key_env = "{HMAC_ENV}"')
    deployment.config.write_text(text)
    return deployment


def _tokens(ledger: dict[str, Any]) -> list[str]:
    urls = [s["params"]["callBackUrl"] for s in ledger["submits"] if isinstance(s["params"], dict)]
    return [urlsplit(u).path.rsplit("/", 1)[-1] for u in urls]


def test_signed_callbacks_forgeries_and_no_secret_anywhere(start_sandbox: Any, deploy: Any) -> None:
    # 0.1: a song takes 6-18 s, so the forged "complete" is verified while the victim is still
    # running (at 0.05 a loaded machine's CLI calls could let it finish first: no contradiction)
    sandbox = start_sandbox(profile="kie", api_key=API_KEY, hmac_key=HMAC_KEY, time_scale=0.1)
    deployment = _kie_deployment(deploy, sandbox.url)
    deployment.start_daemon({"ORCHESTRATOR_TEST_API_KEY": API_KEY, HMAC_ENV: HMAC_KEY})
    submit_song(deployment, "victim")
    submit_song(deployment, "bystander")

    def two_submits() -> dict[str, Any] | None:
        snapshot: dict[str, Any] = sandbox.ledger()
        return snapshot if len(_tokens(snapshot)) >= 2 else None

    ledger = wait_for(two_submits, 30, "two submits")
    tokens = _tokens(ledger)
    victim_task = wait_for(
        lambda: next(
            (j["task_id"] for j in deployment.jobs() if j["key"] == "victim" and j["task_id"]), None
        ),
        30,
        "the victim's task id",
    )
    victim_token = next(
        _tokens({"submits": [s]})[0] for s in ledger["submits"] if s.get("taskId") == victim_task
    )
    url = f"http://127.0.0.1:{deployment.callback_port}/callbacks/{victim_token}"
    forged = {
        "code": 200,
        "msg": "success",
        "data": {
            "callbackType": "complete",
            "task_id": victim_task,
            "data": [
                {"id": "evil-1", "audio_url": "http://169.254.169.254/latest/meta-data"},
                {"id": "evil-2", "audio_url": "http://10.0.0.1/internal.mp3"},
            ],
        },
    }
    with httpx.Client(timeout=5) as client:
        # unsigned, badly signed: refused
        assert client.post(url, json=forged).status_code == 401
        ts = str(int(time.time()))
        bad = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign("wrong", victim_task, ts)}
        assert client.post(url, json=forged, headers=bad).status_code == 401
        # validly signed (the signature does not cover the body): accepted, yet only a hint
        good = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(HMAC_KEY, victim_task, ts)}
        answer = client.post(url, json=forged, headers=good)
        assert answer.status_code in (200, 401)  # 401: the sandbox used this second already
        if answer.status_code == 401:
            ts = str(int(time.time()) + 1)
            good = {
                "X-Webhook-Timestamp": ts,
                "X-Webhook-Signature": sign(HMAC_KEY, victim_task, ts),
            }
            assert client.post(url, json=forged, headers=good).status_code == 200
        # the same signature again: a replay
        assert client.post(url, json=forged, headers=good).status_code == 401

    def both_completed() -> list[dict[str, Any]] | None:
        current = deployment.jobs()
        done = len(current) == 2 and all(j["state"] == "completed" for j in current)
        return current if done else None

    jobs = wait_for(both_completed, 90, "both jobs completed")
    victim = next(j for j in jobs if j["key"] == "victim")
    result = json.dumps(victim["result"])
    assert "169.254.169.254" not in result and "10.0.0.1" not in result
    shown = deployment.cli_json("show", "victim")
    events = shown.get("events") or shown.get("timeline") or []
    types = [e.get("type") for e in events]
    assert "callback_contradicted" in types, types
    assert "callback_unauthorized" in types
    final = sandbox.ledger()
    assert any(c.get("signed") and c.get("ok") for c in final["callbacks"]), (
        "no signed callback accepted"
    )
    for artifact in final["artifacts"].values():
        assert artifact["refused"] == 0
    deployment.stop_all()

    # no secret anywhere: daemon logs, status, show (with its event log)
    outputs = [
        deployment.logs(),
        deployment.cli("status", "--json", check=True).stdout,
        deployment.cli("status", check=True).stdout,
    ]
    for key in ("victim", "bystander"):
        outputs.append(deployment.cli("show", key, "--json", check=True).stdout)
        outputs.append(deployment.cli("show", key, check=True).stdout)
    text = "\n".join(outputs)
    assert "callback_accepted" in text  # the logs were captured
    secrets = {"api key": API_KEY, "hmac key": HMAC_KEY} | {
        f"token {i}": t for i, t in enumerate(tokens)
    }
    for name, secret in secrets.items():
        assert len(secret) >= 20
        assert secret not in text, f"the {name} leaked"
