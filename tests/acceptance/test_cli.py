"""The CLI as a user meets it: clear errors, never a traceback, the documented JSON shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.acceptance.harness import SONG, Deployment, submit_song, wait_for

pytestmark = pytest.mark.timeout(120)

JOB_FIELDS = {
    "key", "kind", "state", "provider", "task_id", "params", "result", "artifacts", "error",
    "polls", "callbacks", "submit_attempts", "created_at", "updated_at", "finished_at",
}  # fmt: skip


def _no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout


def test_submit_is_idempotent_by_key_and_conflicts_are_clear(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    first = d.cli("submit", "generate_music", "--params", json.dumps(SONG), "--key", "k1")
    assert first.returncode == 0 and first.stdout.strip() == "k1"
    again = d.cli("submit", "generate_music", "--params", json.dumps(SONG), "--key", "k1")
    assert again.returncode == 0 and again.stdout.strip() == "k1"
    other = dict(SONG, prompt="something else")
    conflict = d.cli("submit", "generate_music", "--params", json.dumps(other), "--key", "k1")
    assert conflict.returncode == 2 and conflict.stderr.startswith("error:")
    _no_traceback(conflict)
    assert len(d.jobs()) == 1


def test_param_values_parse_as_json_or_string(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    d.cli(
        "submit", "generate_music", "--key", "p", "--param", "customMode=false",
        "--param", "instrumental=true", "--param", "model=V4_5", "--param", "prompt=a song",
        check=True,
    )  # fmt: skip
    job = d.cli_json("show", "p")
    assert job["params"] == {
        "customMode": False, "instrumental": True, "model": "V4_5", "prompt": "a song",
    }  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["show", "no-such-job"],
        ["cancel", "no-such-job"],
        ["submit", "no_such_kind", "--param", "a=1"],
        ["submit", "generate_music", "--param", "model=V4_5"],
        ["submit", "generate_music", "--params", "{not json"],
        ["submit", "generate_music", "--params", json.dumps(SONG), "--key", "../../etc"],
        ["resolve", "no-such-job", "--fail"],
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(deploy: Any, args: list[str]) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    result = d.cli(*args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ")
    _no_traceback(result)


def test_bad_config_is_a_clear_error(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    d.config.write_text(d.config.read_text() + "\n[polling]\nintervall_s = 3\n")
    result = d.cli("status")
    assert result.returncode == 2 and "error:" in result.stderr
    _no_traceback(result)
    d.config.write_text('[polling]\ninterval_s = "fast"\n')
    result = d.cli("run")
    assert result.returncode == 2 and "interval_s" in result.stderr
    _no_traceback(result)


def test_status_and_show_json_follow_the_contract(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    submit_song(d, "shape")
    [job] = d.cli_json("status")
    assert set(job) >= JOB_FIELDS
    assert job["state"] == "queued" and job["task_id"] is None and job["error"] is None
    shown = d.cli_json("show", "shape")
    assert set(shown) >= JOB_FIELDS and shown["events"][0]["type"] == "created"
    assert d.cli_json("status", "--state", "completed") == []
    assert d.jobs() == [job]  # the harness's in-process read is what the CLI prints


def test_cancel_and_retry(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    submit_song(d, "c")
    assert d.cli("cancel", "c", check=True).stdout.strip() == "c: cancelled"
    again = d.cli("cancel", "c")
    assert again.returncode == 2 and "cancelled" in again.stderr
    assert d.cli("retry", "c", check=True).stdout.strip() == "c: queued"


def test_submit_wait_follows_to_completion(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    d: Deployment = deploy(sandbox.url, interval_s=1.0)
    d.start_daemon()
    result = d.cli(
        "submit", "generate_music", "--params", json.dumps(SONG), "--key", "w", "--wait",
        "--timeout", "60", timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "w: completed" in result.stderr
    assert "w: pending" in result.stderr or "w: running" in result.stderr
    wait_for(lambda: d.cli_json("show", "w")["state"] == "completed", 5, "completed")


def test_http_api_and_healthz(start_sandbox: Any, deploy: Any) -> None:
    import httpx

    sandbox = start_sandbox(time_scale=0.02)
    d: Deployment = deploy(sandbox.url, interval_s=1.0)
    d.start_daemon()
    base = f"http://127.0.0.1:{d.callback_port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["upstream"] == {"breaker": "closed", "breaker_open": False}
        created = client.post(
            "/api/jobs", json={"kind": "generate_music", "params": SONG, "key": "h"}
        )
        assert created.status_code == 201 and created.json()["key"] == "h"
        assert (
            client.post(
                "/api/jobs", json={"kind": "generate_music", "params": SONG, "key": "h"}
            ).status_code
            == 200
        )
        bad = client.post("/api/jobs", json={"kind": "generate_music", "params": {}})
        assert bad.status_code == 400 and "needs" in bad.json()["msg"]
        assert (
            client.post(
                "/api/jobs", content=b"x", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
        assert client.get("/api/jobs/nope").status_code == 404
        wait_for(lambda: client.get("/api/jobs/h").json()["state"] == "completed", 60, "completed")
        assert client.post("/callbacks/" + "A" * 43, json={"code": 200}).status_code == 404


def test_a_pipeline_from_the_cli_waits_and_cancels_as_a_tree(deploy: Any) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")  # no daemon: nothing is released here
    submit_song(d, "song")
    wav = d.cli(
        "submit", "wav", "--key", "song-wav", "--after", "song",
        "--param", "taskId=${song.task_id}", "--param", "audioId=${song.tracks[0].id}",
    )  # fmt: skip
    assert wav.returncode == 0 and wav.stdout.strip() == "song-wav", wav.stderr
    d.cli(
        "submit", "music_video", "--key", "video", "--after", "song", "--for-each", "song.tracks",
        "--param", "taskId=${song.task_id}", "--param", "audioId=${item.id}", check=True,
    )  # fmt: skip
    jobs = {j["key"]: j for j in d.jobs()}
    assert jobs["song-wav"]["state"] == "waiting" and jobs["song-wav"]["parents"] == ["song"]
    assert jobs["song"]["children"] == ["song-wav", "video"]
    assert jobs["video"]["for_each"] == "song.tracks"
    shown = d.cli("show", "song-wav", check=True).stdout
    assert "waiting for parent song (queued)" in shown and "parents:   song" in shown
    tree = d.cli("status", check=True).stdout
    assert "├─ song-wav" in tree and "└─ video" in tree
    cancelled = d.cli("cancel", "--tree", "song", check=True).stdout.split("\n")
    assert {line.split(":")[0] for line in cancelled if line} == {"song", "song-wav", "video"}
    assert {j["state"] for j in d.jobs()} == {"cancelled"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--after", "nope", "--param", "taskId=t", "--param", "audioId=a"], "no known job"),
        (["--param", "taskId=${song.task_id}", "--param", "audioId=a"], "needs after"),
        (
            ["--after", "song", "--param", "taskId=t", "--param", "audioId=${song.tracks[0].x}"],
            "a track has no field 'x'",
        ),
        (["--after", "song", "--param", "taskId=t", "--param", "audioId=${item.id}"], "for_each"),
    ],
)
def test_a_bad_pipeline_submit_is_a_clear_error_and_records_nothing(
    deploy: Any, args: list[str], message: str
) -> None:
    d: Deployment = deploy("http://127.0.0.1:9")
    submit_song(d, "song")
    result = d.cli("submit", "wav", "--key", "w", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    _no_traceback(result)
    assert [j["key"] for j in d.jobs()] == ["song"]


def test_init_writes_a_config_that_runs_and_db_backup_copies_a_live_database(
    tmp_path: Any, start_sandbox: Any
) -> None:
    import sqlite3
    import subprocess
    import sys

    def run(*args: str, cwd: Any = tmp_path) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            capture_output=True, text=True, timeout=60, cwd=cwd,
        )  # fmt: skip

    made = run("init", "site")
    assert made.returncode == 0, made.stderr
    config = tmp_path / "site" / "config.toml"
    assert config.is_file() and (tmp_path / "site" / "var" / "artifacts").is_dir()
    again = run("init", "site")
    assert again.returncode == 2 and "exists; --force replaces it" in again.stderr
    status = run("--config", str(config), "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == []
    current = run("--config", str(config), "db", "current")
    assert current.returncode == 0 and "revision 0005 (current)" in current.stdout
    copy = tmp_path / "backup.db"
    backed = run("--config", str(config), "db", "backup", str(copy))
    assert backed.returncode == 0, backed.stderr
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0005"
    twice = run("--config", str(config), "db", "backup", str(copy))
    assert twice.returncode == 2 and "exists" in twice.stderr


def test_top_shows_counts_rates_the_daemon_and_the_latest_transitions(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    d: Deployment = deploy(sandbox.url, interval_s=1.0)
    submit_song(d, "song")
    down = d.cli("top", "--once", check=True).stdout
    assert "daemon: not answering on this host" in down and "queued" in down
    d.start_daemon()
    wait_for(lambda: d.jobs()[0]["state"] == "completed", 60, "the song")
    up = d.cli("top", "--once", check=True).stdout
    assert "daemon: up, breaker closed" in up
    assert "succeeded" in up and "completed" in up  # the latest transitions
    assert "last minute" in up and "submits" in up
