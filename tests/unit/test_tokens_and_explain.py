"""Callback tokens (submitter helpers) and `show`'s one-sentence explanation per state."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orchestrator.domain import Artifact, ArtifactState, Job, JobError
from orchestrator.machine import Policy
from orchestrator.service import explain
from orchestrator.states import JobState
from orchestrator.tokens import CALLBACK_PREFIX, callback_url, hash_token, new_token

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NEXT = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
DEADLINE = datetime(2024, 5, 1, 12, 30, 0, tzinfo=UTC)

# --- tokens -----------------------------------------------------------------------------------


def test_token_is_long_url_safe_and_hashed() -> None:
    token, token_hash = new_token()
    assert len(token) >= 43  # 32 random bytes = 256 bits, base64url without padding
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash)
    assert token not in token_hash


def test_tokens_differ() -> None:
    tokens = {new_token()[0] for _ in range(100)}
    assert len(tokens) == 100


def test_hash_token_is_stable_sha256() -> None:
    assert hash_token("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert hash_token("abc") != hash_token("abd")


@pytest.mark.parametrize(
    "public_url", ["http://127.0.0.1:8787", "http://127.0.0.1:8787/", "https://h.example/base/"]
)
def test_callback_url_joins_without_double_slash(public_url: str) -> None:
    url = callback_url(public_url, "TOKEN123")
    assert url == public_url.rstrip("/") + "/callbacks/TOKEN123"
    assert CALLBACK_PREFIX == "/callbacks/"
    assert "//callbacks" not in url


# --- explain ----------------------------------------------------------------------------------


def job(state: JobState, **changes: object) -> Job:
    base = Job(
        id=1,
        key="song-1",
        kind="generate_music",
        provider="sunoapi",
        state=state,
        params={"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "x"},
        created_at=T0,
        updated_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


POLICY = Policy()


def one_sentence(text: str) -> None:
    assert text
    assert "\n" not in text
    assert text.count(". ") == 0  # no second sentence


def test_every_state_has_an_explanation() -> None:
    texts = {state: explain(job(state), POLICY) for state in JobState}
    for text in texts.values():
        one_sentence(text)
    # each state reads differently (pending and running both quote the upstream's status)
    del texts[JobState.RUNNING]
    assert len(set(texts.values())) == len(texts)


def test_pending_without_times_does_not_print_none() -> None:
    assert "None" not in explain(job(JobState.PENDING), POLICY)


def test_queued() -> None:
    assert explain(job(JobState.QUEUED), POLICY) == "waiting for the daemon to submit it"
    text = explain(job(JobState.QUEUED, not_before=NEXT), POLICY)
    assert "not before 2024-05-01T12:00:30Z" in text


def test_submitting() -> None:
    assert "submit request" in explain(job(JobState.SUBMITTING), POLICY)


@pytest.mark.parametrize("policy", ["hold", "resubmit", "fail"])
def test_uncertain_names_the_resolve_command(policy: str) -> None:
    text = explain(job(JobState.UNCERTAIN), Policy(uncertain_policy=policy))
    assert text.startswith("UNCERTAIN")
    assert "orchestrator resolve song-1" in text
    for option in ("--task-id", "--resubmit", "--fail"):
        assert option in text
    assert f"policy: {policy}" in text


@pytest.mark.parametrize("state", [JobState.PENDING, JobState.RUNNING])
def test_pending_and_running_show_next_poll_and_deadline(state: JobState) -> None:
    text = explain(
        job(state, upstream_status="TEXT_SUCCESS", next_poll_at=NEXT, deadline_at=DEADLINE),
        POLICY,
    )
    assert "TEXT_SUCCESS" in text
    assert "2024-05-01T12:00:30Z" in text
    assert "2024-05-01T12:30:00Z" in text


def test_pending_without_upstream_status_says_pending() -> None:
    assert "upstream says PENDING" in explain(job(JobState.PENDING), POLICY)


def test_succeeded_lists_files_still_to_download() -> None:
    artifacts = (
        Artifact(name="t1.mp3", url="http://a", media="audio", state=ArtifactState.STORED),
        Artifact(name="t1.jpeg", url="http://i", media="image"),
        Artifact(name="t2.mp3", url="http://b", media="audio"),
    )
    text = explain(job(JobState.SUCCEEDED, artifacts=artifacts), POLICY)
    assert "2 file(s)" in text
    assert "t1.jpeg" in text
    assert "t2.mp3" in text
    assert "t1.mp3" not in text


def test_completed_counts_files() -> None:
    artifacts = (
        Artifact(name="a.mp3", url="http://a", media="audio", state=ArtifactState.STORED),
        Artifact(name="a.jpeg", url="http://i", media="image", state=ArtifactState.STORED),
    )
    assert "2 file(s) stored" in explain(job(JobState.COMPLETED, artifacts=artifacts), POLICY)


def test_failed_names_stage_and_message() -> None:
    error = JobError(stage="upstream", code=413, message="sensitive word in prompt")
    text = explain(job(JobState.FAILED, error=error), POLICY)
    assert text == "failed at upstream: sensitive word in prompt"
    assert explain(job(JobState.FAILED), POLICY) == "failed"


def test_timed_out_mentions_late_checks_only_when_scheduled() -> None:
    assert "late result" not in explain(job(JobState.TIMED_OUT), POLICY)
    text = explain(job(JobState.TIMED_OUT, next_poll_at=NEXT), POLICY)
    assert "late result at 2024-05-01T12:00:30Z" in text


def test_cancelled() -> None:
    assert "cancelled" in explain(job(JobState.CANCELLED), POLICY)
