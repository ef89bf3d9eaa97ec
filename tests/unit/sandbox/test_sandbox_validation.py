"""Submit validation rules, per kind, without a network."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.sandbox.kinds import Kind
from orchestrator.sandbox.validation import Rejection, validate

CB = {"callBackUrl": "http://127.0.0.1:1/cb"}


def ok(kind: Kind, body: dict[str, Any]) -> None:
    assert validate(kind, {**CB, **body}) is None


def refused(kind: Kind, body: dict[str, Any]) -> Rejection:
    rejection = validate(kind, {**CB, **body})
    assert rejection is not None
    return rejection


def test_generate_non_custom() -> None:
    base = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "p"}
    ok("generate_music", base)
    assert refused("generate_music", {**base, "prompt": "x" * 501}) == Rejection(
        "too_long", "prompt"
    )
    assert refused("generate_music", {**base, "prompt": "  "}).reason == "missing_field"


def test_generate_custom_requires_style_and_title_and_lyrics_unless_instrumental() -> None:
    base = {"customMode": True, "instrumental": True, "model": "V5", "style": "s", "title": "t"}
    ok("generate_music", base)
    assert refused("generate_music", {**base, "instrumental": False}).field == "prompt"
    assert refused("generate_music", {**base, "title": None}).field == "title"
    ok("generate_music", {**base, "model": "V5_5", "title": "t" * 100})


@pytest.mark.parametrize("model", ["V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5"])
def test_all_documented_models_are_accepted(model: str) -> None:
    ok("generate_music", {"customMode": False, "instrumental": True, "model": model, "prompt": "p"})


def test_callback_url_first() -> None:
    assert validate("music_video", {}) == Rejection("missing_field", "callBackUrl")
    assert validate("wav", {"callBackUrl": 5}) == Rejection("invalid", "callBackUrl")
    assert validate("generate_music", "text") == Rejection(
        "invalid", "request body (a JSON object)"
    )


def test_replace_section_window() -> None:
    base = {
        "taskId": "t",
        "audioId": "a",
        "prompt": "p",
        "tags": "g",
        "title": "t",
        "fullLyrics": "l",
        "infillStartS": 0,
        "infillEndS": 6,
    }
    ok("replace_section", base)
    ok("replace_section", {**base, "infillStartS": 1.25, "infillEndS": 61.25})
    for start, end in [(0, 5.99), (0, 60.01), (3, 3), (0.001, 10), (True, 10), (0, "9")]:
        assert refused("replace_section", {**base, "infillStartS": start, "infillEndS": end})


def test_extend_needs_its_parameters_only_with_default_param_flag() -> None:
    ok("extend", {"defaultParamFlag": False, "audioId": "a", "model": "V4"})
    rejection = refused("extend", {"defaultParamFlag": True, "audioId": "a", "model": "V4"})
    assert rejection == Rejection("missing_field", "continueAt")
    full = {"continueAt": 10, "prompt": "p", "style": "s", "title": "t"}
    ok("extend", {"defaultParamFlag": True, "audioId": "a", "model": "V4", **full})
    bad = {"defaultParamFlag": True, "audioId": "a", "model": "V4", **full, "continueAt": -1}
    assert refused("extend", bad).field == "continueAt"


def test_media_kinds() -> None:
    ok("music_video", {"taskId": "t", "audioId": "a", "author": "x" * 50})
    assert refused("music_video", {"taskId": "t", "audioId": "a", "author": "x" * 51}).reason == (
        "too_long"
    )
    ok("vocal_removal", {"taskId": "t", "audioId": "a", "type": "split_stem"})
    assert refused("vocal_removal", {"taskId": "t", "audioId": "a", "type": "x"}).field == "type"
    assert refused("wav", {"taskId": "t"}).field == "audioId"
