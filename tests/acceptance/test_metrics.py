"""/metrics after a sandbox run: the values agree with what happened, and promtool accepts the
exposition and the example alert rules; /readyz says what it checked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.harness import ROOT, SONG, Deployment, submit_song, wait_for

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in an exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_agree_with_the_run_and_promtool_accepts_them(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0)
    submit_song(deployment, "one")
    submit_song(deployment, "two")
    deployment.cli(
        "submit", "generate_music", "--key", "bad", "--params",
        json.dumps({**SONG, "prompt": "FAIL_500 a song"}), check=True,
    )  # fmt: skip
    deployment.start_daemon()
    base = f"http://127.0.0.1:{deployment.callback_port}"
    wait_for(
        lambda: {j["state"] for j in deployment.jobs()} == {"completed", "failed"}, 60, "the run"
    )
    refused = httpx.post(f"{base}/callbacks/not-a-token", json={"code": 200}, timeout=5)
    assert refused.status_code == 404
    text = httpx.get(f"{base}/metrics", timeout=5).text
    assert sample(text, "orchestrator_jobs", state="completed", kind="generate_music") == 2
    assert sample(text, "orchestrator_jobs", state="failed", kind="generate_music") == 1
    assert sample(text, "orchestrator_submits_total", outcome="accepted") == 3
    assert (
        sample(
            text, "orchestrator_upstream_requests_total", endpoint="/api/v1/generate", outcome="ok"
        )
        == 3
    )
    assert sample(
        text, "orchestrator_transitions_total", kind="generate_music",
        from_state="succeeded", to_state="completed",
    ) == 2  # fmt: skip
    assert sample(text, "orchestrator_callbacks_total", outcome="accepted") >= 1
    assert sample(text, "orchestrator_callbacks_total", outcome="unknown_token") == 1
    assert sample(text, "orchestrator_detection_seconds_count") == 2
    assert sample(text, "orchestrator_downloads_bytes_total") > 0
    assert sample(text, "orchestrator_breaker_open") == 0
    assert sample(text, "orchestrator_build_info") == 1
    assert sample(text, "orchestrator_poll_lateness_seconds_count") >= 1
    if PROMTOOL is not None:
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"]["database"] == "reachable"
    assert "poller_tick_age_s" in ready.json()["checks"]
    # every event says who wrote it: the CLI that recorded the job, then the daemon
    nodes = [e["node"] for e in deployment.cli_json("show", "one")["events"]]
    assert nodes[0].startswith("cli:") and len(set(nodes[1:])) == 1
    assert not nodes[1].startswith("cli:") and nodes[1].count(":") == 2
    # the same access rule as the job API: a forwarded (internet) caller is refused
    hidden = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert hidden.status_code == 403


@needs_promtool
def test_the_example_alert_rules_are_valid() -> None:
    rules = ROOT / "docs" / "alerts.rules.yml"
    checked = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    assert Path(ROOT / "docs" / "operations.md").read_text().count("alerts.rules.yml") >= 1
