"""Pipelines over the sandbox, from config: the daemon releases each job once its parents
completed, with references resolved; a failing parent fails every descendant at stage
dependency and none of them is submitted; a SIGKILL mid-pipeline loses nothing and pays
nothing twice (the sandbox's ledger is the upstream's own record of every submit)."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from tests.acceptance.harness import Deployment, wait_for

SONG_PROMPT = "a calm piano piece"


def pipeline(song_prompt: str = SONG_PROMPT) -> str:
    """song -> a video per track, and a replaced section -> a WAV of the section."""
    return f"""
[[jobs]]
key = "song"
kind = "generate_music"
[jobs.params]
customMode = false
instrumental = false
model = "V4_5"
prompt = {json.dumps(song_prompt)}

[[jobs]]
key = "video"
kind = "music_video"
after = "song"
for_each = "song.tracks"
params = {{ taskId = "${{song.task_id}}", audioId = "${{item.id}}", author = "me" }}

[[jobs]]
key = "chorus"
kind = "replace_section"
after = "song"
[jobs.params]
taskId = "${{song.task_id}}"
audioId = "${{song.tracks[0].id}}"
prompt = "a brighter chorus"
tags = "pop"
title = "Chorus"
infillStartS = 10.0
infillEndS = 20.0
fullLyrics = "la la la, $$5 a line"

[[jobs]]
key = "chorus-wav"
kind = "wav"
after = ["chorus"]
params = {{ taskId = "${{chorus.task_id}}", audioId = "${{chorus.tracks[0].id}}" }}
"""


KEYS = {"song", "video", "video.0", "video.1", "chorus", "chorus-wav"}


def by_key(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {job["key"]: job for job in deployment.jobs()}


def all_in(deployment: Deployment, states: set[str], keys: set[str]) -> Any:
    jobs = by_key(deployment)
    if set(jobs) >= keys and all(jobs[k]["state"] in states for k in keys):
        return jobs
    return None


def submits(ledger: dict[str, Any]) -> Counter[str]:
    """Accepted submits per endpoint path."""
    return Counter(s["path"] for s in ledger["submits"] if s.get("outcome") == "accepted")


def test_a_three_level_pipeline_from_config(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0, jobs=pipeline())
    deployment.start_daemon()
    waiting = deployment.cli("status", check=True).stdout  # recorded at start, song first
    assert "waiting" in waiting and "└─ chorus-wav" in waiting, waiting
    jobs = wait_for(lambda: all_in(deployment, {"completed"}, KEYS), 90, "the whole pipeline")
    song, chorus, wav = jobs["song"], jobs["chorus"], jobs["chorus-wav"]
    # params were resolved when released, and show what was sent
    assert chorus["params"]["taskId"] == song["task_id"]
    assert chorus["params"]["audioId"] == song["result"]["tracks"][0]["id"]
    assert chorus["params"]["infillStartS"] == 10.0  # a number stays a number
    assert chorus["params"]["fullLyrics"] == "la la la, $5 a line"
    assert wav["params"] == {
        "taskId": chorus["task_id"],
        "audioId": chorus["result"]["tracks"][0]["id"],
    }
    tracks = [t["id"] for t in song["result"]["tracks"]]
    assert [jobs[f"video.{n}"]["params"]["audioId"] for n in range(2)] == tracks
    # the tree: parents and children, both ways
    assert jobs["video"]["children"] == ["video.0", "video.1"]
    assert sorted(jobs["song"]["children"]) == ["chorus", "video"]
    assert jobs["chorus-wav"]["parents"] == ["chorus"]
    shown = deployment.cli_json("show", "video")
    assert shown["children"] == ["video.0", "video.1"] and shown["for_each"] == "song.tracks"
    # one submit per job that has a task of its own; the for_each job itself has none
    ledger = sandbox.ledger()
    assert submits(ledger) == Counter(
        {
            "/api/v1/generate": 1,
            "/api/v1/mp4/generate": 2,
            "/api/v1/generate/replace-section": 1,
            "/api/v1/wav/generate": 1,
        }
    )
    assert jobs["video"]["task_id"] is None
    # files named for people, under the job's key
    files = {a["name"] for a in jobs["song"]["artifacts"]}
    assert {"1-a-calm-piano-piece.mp3", "2-a-calm-piano-piece.mp3"} <= files, files
    assert [a["name"] for a in jobs["video.0"]["artifacts"]] == ["video.mp4"]
    assert [a["name"] for a in wav["artifacts"]] == ["audio.wav"]
    stored = Path(wav["artifacts"][0]["path"])
    assert stored.parent.name == "chorus-wav" and stored.stat().st_size > 0
    tree = deployment.cli("status", check=True).stdout
    assert "├─ video" in tree or "└─ video" in tree


def test_a_failing_parent_fails_its_descendants_and_submits_none(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(
        sandbox.url, interval_s=1.0, jobs=pipeline("a piano piece FAIL_500")
    )
    daemon = deployment.start_daemon()
    below = {"video", "chorus", "chorus-wav"}
    jobs = wait_for(
        lambda: all_in(deployment, {"failed"}, {"song", *below}), 60, "the failure to spread"
    )
    for key in below:
        error = jobs[key]["error"]
        assert error["stage"] == "dependency", (key, error)
        assert jobs[key]["task_id"] is None and jobs[key]["submit_attempts"] == 0
    assert "'song'" in jobs["chorus"]["error"]["message"]
    assert "'chorus'" in jobs["chorus-wav"]["error"]["message"]
    assert "video.0" not in jobs  # no children were made
    assert submits(sandbox.ledger()) == Counter({"/api/v1/generate": 1})
    # retry of the parent makes the descendants eligible again (they wait once more); the
    # daemon is stopped first, or the retried parent may fail again before we look
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert deployment.cli("retry", "song", check=True).returncode == 0
    again = by_key(deployment)
    assert {again[k]["state"] for k in below} == {"waiting"}
    # and when the parent fails once more, so do they, still without a submit of their own
    deployment.start_daemon()
    wait_for(lambda: all_in(deployment, {"failed"}, {"song", *below}), 60, "the second failure")
    assert submits(sandbox.ledger()) == Counter({"/api/v1/generate": 2})


def test_a_sigkill_mid_pipeline_creates_every_child_once_and_pays_nothing_twice(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0, jobs=pipeline())
    first = deployment.start_daemon()
    # kill it once the pipeline is under way: the song done, the next level released
    wait_for(
        lambda: submits(sandbox.ledger())["/api/v1/mp4/generate"] >= 1, 60, "a video submitted"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    deployment.start_daemon()

    def blocked(jobs: dict[str, Any], key: str) -> bool:
        """Waiting below an uncertain job (held for the operator: its own decision)."""
        job = jobs[key]
        above = list(job["parents"]) + (list(job["children"]) if job["for_each"] else [])
        return job["state"] == "waiting" and any(
            jobs[k]["state"] == "uncertain" or blocked(jobs, k) for k in above if k in jobs
        )

    def settled() -> Any:
        jobs = by_key(deployment)
        if not set(jobs) >= KEYS - {"video.0", "video.1"}:
            return None
        finished = {"completed", "uncertain"}
        if all(j["state"] in finished or blocked(jobs, k) for k, j in jobs.items()):
            return jobs
        return None

    jobs = wait_for(settled, 120, "the pipeline after the restart")
    assert set(jobs) == KEYS  # every child created once, none under another key (the song
    # completed before the kill: the for_each job had expanded, or expands after the restart)
    accepted = [s["taskId"] for s in sandbox.ledger()["submits"] if s.get("outcome") == "accepted"]
    assert len(accepted) == len(set(accepted))
    known = {j["task_id"] for j in jobs.values() if j["task_id"]}
    assert known <= set(accepted)
    # a SIGKILL exactly mid-submit may leave one job uncertain (held, never resubmitted)
    uncertain = [k for k in KEYS if jobs[k]["state"] == "uncertain"]
    assert len(set(accepted) - known) <= len(uncertain) <= 1
    per_path = submits(sandbox.ledger())
    assert per_path["/api/v1/mp4/generate"] <= 2 and per_path["/api/v1/generate"] == 1


LYRICS_TO_SONG = """
[[jobs]]
key = "words"
kind = "lyrics"
params = { prompt = "rain on a tin roof" }

[[jobs]]
key = "sung"
kind = "generate_music"
after = "words"
[jobs.params]
customMode = true
instrumental = false
model = "V4_5"
style = "folk"
title = "${words.result.lyrics[0].title}"
prompt = "${words.result.lyrics[0].text}"
"""


def test_lyrics_are_stored_as_files_and_feed_a_song(start_sandbox: Any, deploy: Any) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0, jobs=LYRICS_TO_SONG)
    deployment.start_daemon()
    jobs = wait_for(lambda: all_in(deployment, {"completed"}, {"words", "sung"}), 60, "both")
    words, sung = jobs["words"], jobs["sung"]
    first = words["result"]["lyrics"][0]
    assert sung["params"]["prompt"] == first["text"] and sung["params"]["title"] == first["title"]
    files = {a["name"]: Path(a["path"]) for a in words["artifacts"]}
    assert sorted(files) == ["1-rain-on-a-tin.txt", "2-rain-on-a-tin.txt"]
    assert files["1-rain-on-a-tin.txt"].read_text(encoding="utf-8") == first["text"]
    assert submits(sandbox.ledger()) == Counter({"/api/v1/lyrics": 1, "/api/v1/generate": 1})
