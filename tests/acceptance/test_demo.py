"""`orchestrator demo` end to end, as a user runs it (fast): a pipeline from its own config,
every job completed, every file on disk, and the config left behind for `status`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from orchestrator.config import load_settings


def test_the_demo_runs_its_pipeline_from_a_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "demo",
            "--dir",
            str(tmp_path),
            "--time-scale",
            "0.02",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "nothing is paid for twice" in result.stdout
    (run,) = tmp_path.iterdir()
    config = run / "config.toml"
    settings = load_settings(config)
    assert [j.key for j in settings.jobs] == [
        "demo-song",
        "demo-video",
        "demo-section",
        "demo-section-wav",
    ]
    status = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    jobs = {j["key"]: j for j in json.loads(status.stdout)}
    assert set(jobs) == {
        "demo-song",
        "demo-video",
        "demo-video.0",
        "demo-video.1",
        "demo-section",
        "demo-section-wav",
    }
    assert {j["state"] for j in jobs.values()} == {"completed"}
    section = jobs["demo-section"]
    assert section["params"]["taskId"] == jobs["demo-song"]["task_id"]
    assert jobs["demo-section-wav"]["params"]["taskId"] == section["task_id"]
    for job in jobs.values():
        for artifact in job["artifacts"]:
            assert Path(artifact["path"]).stat().st_size == artifact["bytes"]
