"""The `uncertain` paths end to end: the sandbox's ``reset`` fault closes the connection after
the task was created, so the daemon cannot know whether it paid. Then a callback carrying the
job's token, the operator (`resolve`), or the configured policy decides.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.sandbox.faults import parse_faults
from scripts.ledger_checks import check
from tests.acceptance.harness import Deployment, submit_song, wait_for

pytestmark = pytest.mark.timeout(120)


def _landed(sandbox: Any) -> list[str]:
    return [s["taskId"] for s in sandbox.ledger()["submits"] if s.get("outcome") == "accepted"]


def _state(deployment: Deployment, key: str) -> str:
    state: str = deployment.show(key)["state"]
    return state


def _events(deployment: Deployment, key: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = deployment.show(key)["events"]
    return events


def _goes_uncertain(deployment: Deployment, sandbox: Any, key: str) -> str:
    """Submit with every answer lost; return the taskId the upstream created."""
    submit_song(deployment, key)
    wait_for(
        lambda: any(e["to_state"] == "uncertain" for e in _events(deployment, key)),
        30,
        "the job to become uncertain",
    )
    landed = _landed(sandbox)
    assert landed
    return landed[0]


def _deploy(deploy: Any, upstream: str, submit: str = "") -> Deployment:
    deployment: Deployment = deploy(upstream, interval_s=0.5)
    text = deployment.config.read_text().replace("[submit]\n", f"[submit]\n{submit}", 1)
    deployment.config.write_text(text)
    return deployment


def _check(deployment: Deployment, sandbox: Any) -> Any:
    db = f"sqlite:///{deployment.dir / 'var' / 'orchestrator.db'}"
    return check(db, deployment.dir / "var" / "artifacts", sandbox.ledger())


def test_a_callback_with_its_token_resolves_uncertain(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(faults="reset=1.0", time_scale=0.05)
    deployment: Deployment = deploy(sandbox.url, interval_s=0.5)
    deployment.start_daemon()
    task_id = _goes_uncertain(deployment, sandbox, "lost")
    resolved = "callback resolved uncertain submit"
    wait_for(
        lambda: any(e["note"] == resolved for e in _events(deployment, "lost")),
        30,
        "the callback to resolve it",
    )
    sandbox.set_faults(parse_faults(""))  # polls work again
    wait_for(lambda: _state(deployment, "lost") == "completed", 60, "completed")
    job = deployment.cli_json("show", "lost")
    assert job["task_id"] == task_id
    assert _landed(sandbox) == [task_id]  # never submitted again
    report = _check(deployment, sandbox)
    assert report.violations() == [], report.table()


def test_hold_waits_for_resolve_task_id(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(faults="reset=1.0,drop=1.0", time_scale=0.02)
    deployment: Deployment = _deploy(deploy, sandbox.url, "uncertain_grace_s = 0.5\n")
    deployment.start_daemon()
    task_id = _goes_uncertain(deployment, sandbox, "held")
    sandbox.set_faults(parse_faults("drop=1.0"))
    # hold: well past the grace, nothing happens without the operator
    wait_for(lambda: sandbox.engine.ledger_snapshot()["tasks"][task_id]["status"] == "SUCCESS",
             30, "the upstream task to finish")  # fmt: skip
    assert _state(deployment, "held") == "uncertain"
    status = deployment.cli("status", check=True).stdout
    assert "UNCERTAIN" in status
    assert "may have been paid for" in status
    show = deployment.cli("show", "held", check=True).stdout
    assert "UNCERTAIN" in show
    assert "resolve" in show
    deployment.cli("resolve", "held", "--task-id", task_id, check=True)
    wait_for(lambda: _state(deployment, "held") == "completed", 60, "completed after resolve")
    assert _landed(sandbox) == [task_id]
    report = _check(deployment, sandbox)
    assert report.violations() == [], report.table()


def test_policy_resubmit_after_grace(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(faults="reset=1.0,drop=1.0", time_scale=0.02)
    deployment: Deployment = _deploy(
        deploy, sandbox.url, 'uncertain_policy = "resubmit"\nuncertain_grace_s = 1.0\n'
    )
    deployment.start_daemon()
    first = _goes_uncertain(deployment, sandbox, "again")
    sandbox.set_faults(parse_faults("drop=1.0"))
    wait_for(lambda: _state(deployment, "again") == "completed", 60, "completed after resubmit")
    landed = _landed(sandbox)
    assert len(landed) >= 2 and landed[0] == first  # the policy chose to pay again
    job = deployment.cli_json("show", "again")
    assert job["task_id"] == landed[-1]
    assert any(e["note"] == "policy: resubmit after grace" for e in job["events"])
    report = _check(deployment, sandbox)
    assert report.violations() == [], report.table()
    assert report.resubmitted_after_uncertain == ["again"]  # counted, not a duplicate


def test_policy_fail_after_grace(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(faults="reset=1.0,drop=1.0", time_scale=0.02)
    deployment: Deployment = _deploy(
        deploy, sandbox.url, 'uncertain_policy = "fail"\nuncertain_grace_s = 1.0\n'
    )
    deployment.start_daemon()
    submit_song(deployment, "gives-up")
    wait_for(lambda: _state(deployment, "gives-up") == "failed", 30, "failed by policy")
    job = deployment.cli_json("show", "gives-up")
    assert [e["to_state"] for e in job["events"] if e["to_state"]][-2:] == ["uncertain", "failed"]
    assert job["error"]["stage"] == "submit"
    assert len(_landed(sandbox)) == 1


@pytest.mark.parametrize("action", ["--resubmit", "--fail"])
def test_operator_resolve_resubmit_or_fail(start_sandbox: Any, deploy: Any, action: str) -> None:
    sandbox = start_sandbox(faults="reset=1.0,drop=1.0", time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=0.5)
    deployment.start_daemon()
    _goes_uncertain(deployment, sandbox, "op")
    sandbox.set_faults(parse_faults("drop=1.0"))
    deployment.cli("resolve", "op", action, check=True)
    want = "completed" if action == "--resubmit" else "failed"
    wait_for(lambda: _state(deployment, "op") == want, 60, want)
    assert len(_landed(sandbox)) == (2 if action == "--resubmit" else 1)
