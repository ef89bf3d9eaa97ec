"""Failure markers in request fields."""

from __future__ import annotations

import pytest

from orchestrator.sandbox.markers import failure_from_markers


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"prompt": "SENSITIVE_WORD here"}, "SENSITIVE_WORD_ERROR", 400),
        ({"style": "FAIL_CREATE"}, "CREATE_TASK_FAILED", 500),
        ({"prompt": "x FAIL_531 y"}, "GENERATE_AUDIO_FAILED", 531),
        ({"title": "FAIL_408"}, "GENERATE_AUDIO_FAILED", 408),
        ({"prompt": "FAIL_999 FAIL_501"}, "GENERATE_AUDIO_FAILED", 501),
    ],
)
def test_music_markers(params: dict[str, str], status: str, code: int) -> None:
    failure = failure_from_markers("generate_music", params)
    assert failure is not None and (failure.status, failure.code) == (status, code)
    assert failure.refund == (code == 531)


def test_music_video_markers_live_in_author_or_domain_name() -> None:
    failure = failure_from_markers("music_video", {"author": "FAIL_451"})
    assert failure is not None and (failure.status, failure.code) == ("GENERATE_MP4_FAILED", 451)
    failure = failure_from_markers("music_video", {"domainName": "FAIL_CREATE"})
    assert failure is not None and failure.status == "CREATE_TASK_FAILED"
    assert failure_from_markers("music_video", {"taskId": "FAIL_451"}) is None
    assert failure_from_markers("music_video", {"author": "FAIL_531"}) is None  # not a video code
    assert failure_from_markers("music_video", {"author": "SENSITIVE_WORD"}) is None


def test_no_marker_no_failure() -> None:
    assert failure_from_markers("generate_music", {"prompt": "a calm song", "n": 3}) is None
    assert failure_from_markers("wav", {"taskId": "FAIL_500"}) is None
