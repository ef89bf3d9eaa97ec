"""Every kind end to end through the real provider adapter, over HTTP on loopback, in both
profiles: submit, record-info until done, the callback the sandbox POSTs, and the files
:func:`artifacts_for` names from them. A kind whose adapter reads the upstream wrong (a
path, a field name, a success without its file) fails here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.kinds import artifacts_for, validate_params
from orchestrator.observations import UpstreamReport, UpstreamStatus
from orchestrator.providers import make_provider
from orchestrator.providers.base import Provider
from orchestrator.sandbox import SandboxServer
from orchestrator.sandbox.testing import CallbackReceiver
from tests.integration.sandbox.conftest import SandboxFactory

SONG = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "calm piano"}


@pytest.fixture
def provider(start_sandbox: SandboxFactory, profile: str) -> Iterator[Provider]:
    sandbox: SandboxServer = start_sandbox(profile=profile, time_scale=0.002)
    with httpx.Client(timeout=5.0) as client:
        yield make_provider(profile, client, base_url=sandbox.url, api_key="sandbox-key")


def until_done(
    provider: Provider, kind: str, task_id: str, timeout: float = 10.0
) -> UpstreamReport:
    deadline = time.monotonic() + timeout
    while True:
        report = provider.fetch(kind, task_id)
        if report.status in (UpstreamStatus.SUCCESS, UpstreamStatus.FAILED):
            return report
        assert time.monotonic() < deadline, f"{kind} {task_id} still {report.status}"
        time.sleep(0.02)


def run(
    provider: Provider, receiver: CallbackReceiver, kind: str, params: dict[str, Any]
) -> tuple[UpstreamReport, UpstreamReport]:
    """The kind's final poll and its final callback, both normalised."""
    validate_params(kind, params)  # what the upstream takes passes our local check too
    task_id = provider.submit(kind, params, receiver.url(f"/{kind}"))
    polled = until_done(provider, kind, task_id)
    bodies = receiver.wait_for(1, task_id, timeout=10.0)

    def final() -> Any:
        found = [b for b in receiver.bodies(task_id) if _final(provider, kind, b)]
        return found[-1] if found else None

    deadline = time.monotonic() + 10
    while final() is None:
        assert time.monotonic() < deadline, f"no final callback for {kind}: {bodies}"
        time.sleep(0.02)
    return polled, provider.parse_callback(kind, final())


def _final(provider: Provider, kind: str, body: Any) -> bool:
    report = provider.parse_callback(kind, body)
    return report.status in (UpstreamStatus.SUCCESS, UpstreamStatus.FAILED)


def song(provider: Provider, receiver: CallbackReceiver) -> UpstreamReport:
    polled, _ = run(provider, receiver, "generate_music", SONG)
    assert polled.status == UpstreamStatus.SUCCESS and len(polled.tracks) == 2
    return polled


def test_extend_makes_two_tracks_named_for_people(
    provider: Provider, receiver: CallbackReceiver
) -> None:
    source = song(provider, receiver)
    params = {"defaultParamFlag": False, "audioId": source.tracks[0].id, "model": "V4_5"}
    polled, called = run(provider, receiver, "extend", params)
    assert polled.status == called.status == UpstreamStatus.SUCCESS
    names = [a.name for a in artifacts_for("extend", polled) or ()]
    assert len(names) == 4 and all(n[0] in "12" for n in names), names
    assert {t.id for t in called.tracks} == {t.id for t in polled.tracks}


def test_wav_yields_one_wav_file(provider: Provider, receiver: CallbackReceiver) -> None:
    source = song(provider, receiver)
    params = {"taskId": source.task_id, "audioId": source.tracks[1].id}
    polled, called = run(provider, receiver, "wav", params)
    assert polled.status == called.status == UpstreamStatus.SUCCESS
    for report in (polled, called):
        files = artifacts_for("wav", report)
        assert files is not None and [(a.name, a.media) for a in files] == [("audio.wav", "audio")]


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ("separate_vocal", {"vocals.mp3", "instrumental.mp3"}),
        ("split_stem", None),  # every instrument: at least vocals, drums and bass
    ],
)
def test_vocal_removal_yields_its_stems(
    provider: Provider, receiver: CallbackReceiver, split: str, expected: set[str] | None
) -> None:
    source = song(provider, receiver)
    params = {"taskId": source.task_id, "audioId": source.tracks[0].id, "type": split}
    polled, called = run(provider, receiver, "vocal_removal", params)
    assert polled.status == called.status == UpstreamStatus.SUCCESS
    from_poll = {a.name for a in artifacts_for("vocal_removal", polled) or ()}
    from_callback = {a.name for a in artifacts_for("vocal_removal", called) or ()}
    assert from_poll == from_callback
    if expected is not None:
        assert from_poll == expected
    else:
        assert {"vocals.mp3", "drums.mp3", "bass.mp3"} <= from_poll, from_poll
    assert not any("origin" in name for name in from_poll)  # the input is not a result


def test_music_video_still_yields_its_video(provider: Provider, receiver: CallbackReceiver) -> None:
    source = song(provider, receiver)
    params = {"taskId": source.task_id, "audioId": source.tracks[0].id, "author": "me"}
    polled, called = run(provider, receiver, "music_video", params)
    assert [a.name for a in artifacts_for("music_video", polled) or ()] == ["video.mp4"]
    assert [a.name for a in artifacts_for("music_video", called) or ()] == ["video.mp4"]


def test_lyrics_are_text_results_stored_as_files(
    provider: Provider, receiver: CallbackReceiver
) -> None:
    polled, called = run(provider, receiver, "lyrics", {"prompt": "rain on a tin roof"})
    assert polled.status == called.status == UpstreamStatus.SUCCESS
    assert polled.texts == called.texts and len(polled.texts) == 2
    title, text = polled.texts[0]
    assert title == "Rain On A Tin" and "[Verse]" in text
    files = artifacts_for("lyrics", polled) or ()
    assert [(a.name, a.media) for a in files] == [
        ("1-rain-on-a-tin.txt", "text"),
        ("2-rain-on-a-tin.txt", "text"),
    ]
    assert all(a.url.startswith("data:text/plain;charset=utf-8;base64,") for a in files)
    assert polled.result_json()["lyrics"][1] == {"title": title, "text": polled.texts[1][1]}


def test_a_lyrics_failure_is_reported_by_both_channels(
    provider: Provider, receiver: CallbackReceiver
) -> None:
    polled, called = run(provider, receiver, "lyrics", {"prompt": "a song FAIL_500"})
    assert polled.status == called.status == UpstreamStatus.FAILED
    assert polled.error_code == called.error_code == 500
