"""The credit guard over the sandbox: a balance below ``min_credits`` holds every submit (the
jobs stay queued, `status` and `show` say why) and submitting resumes by itself once the
balance is topped up (``POST /_sandbox/credits``); an out-of-credits answer holds the queue
the same way instead of burning the job's submit attempts. Both profiles: the answer is 429
on sunoapi.org and 402 on kie.ai."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.acceptance.harness import Deployment, submit_song, wait_for

GUARD = """
min_credits = {min_credits}
credit_check_s = 0.5
"""


def top_up(sandbox: Any, credits: int) -> None:
    answer = httpx.post(f"{sandbox.url}/_sandbox/credits", json={"credits": credits}, timeout=5)
    answer.raise_for_status()


def deployment_with_guard(deploy: Any, sandbox: Any, min_credits: int, profile: str) -> Any:
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0)
    text = deployment.config.read_text()
    text = text.replace('profile = "sunoapi"', f'profile = "{profile}"')
    text = text.replace(
        "timeout_s = 5.0", "timeout_s = 5.0" + GUARD.format(min_credits=min_credits)
    )
    deployment.config.write_text(text)
    return deployment


def states(deployment: Deployment) -> dict[str, str]:
    return {j["key"]: j["state"] for j in deployment.jobs()}


@pytest.mark.parametrize("profile", ["sunoapi", "kie"])
def test_a_low_balance_holds_every_submit_until_topped_up(
    start_sandbox: Any, deploy: Any, profile: str
) -> None:
    sandbox = start_sandbox(time_scale=0.02, credits=10, profile=profile)
    deployment = deployment_with_guard(deploy, sandbox, min_credits=20, profile=profile)
    submit_song(deployment, "song-1")
    deployment.start_daemon()
    held = wait_for(lambda: (j := deployment.show("song-1"))["held"] and j, 20, "the hold")
    assert held["state"] == "queued"
    assert "balance 10 is below min_credits 20" in held["held"]
    assert "held: credits: balance 10" in held["why"]
    table = deployment.cli("status", check=True).stdout
    assert "submitting held" in table and "below min_credits" in table
    time.sleep(1.5)  # several checks later: still nothing sent, nothing failed
    assert sandbox.ledger()["submits"] == []
    assert states(deployment) == {"song-1": "queued"}
    top_up(sandbox, 100)
    wait_for(lambda: states(deployment) == {"song-1": "completed"}, 60, "the song after top-up")
    assert deployment.cli_json("show", "song-1")["held"] is None
    assert len(sandbox.ledger()["submits"]) == 1


@pytest.mark.parametrize("profile", ["sunoapi", "kie"])
def test_an_out_of_credits_answer_parks_the_queue_instead_of_burning_retries(
    start_sandbox: Any, deploy: Any, profile: str
) -> None:
    # 30 credits pay for two songs (12 each); the third submit is refused for credits
    sandbox = start_sandbox(time_scale=0.02, credits=30, profile=profile)
    deployment = deployment_with_guard(deploy, sandbox, min_credits=0, profile=profile)
    for n in range(3):
        submit_song(deployment, f"song-{n}")
    deployment.start_daemon()

    def two_done_one_held() -> Any:
        jobs = {j["key"]: j for j in deployment.jobs()}
        done = [k for k, j in jobs.items() if j["state"] == "completed"]
        queued = [j for j in jobs.values() if j["state"] == "queued" and j["held"]]
        return len(done) == 2 and len(queued) == 1 and queued[0]

    parked = wait_for(two_done_one_held, 60, "two songs paid for, the third parked")
    assert "refused a submit" in parked["held"]
    assert parked["error"]["stage"] == "submit"  # the last answer, for `show`
    refusals = [s for s in sandbox.ledger()["submits"] if s.get("outcome") != "accepted"]
    time.sleep(2.0)  # held: no retry storm against an empty account
    later = [s for s in sandbox.ledger()["submits"] if s.get("outcome") != "accepted"]
    assert len(later) <= len(refusals) + 1
    job = deployment.cli_json("show", parked["key"])
    assert job["state"] == "queued" and job["submit_attempts"] <= 1
    top_up(sandbox, 100)
    wait_for(
        lambda: set(states(deployment).values()) == {"completed"}, 60, "every song after top-up"
    )
