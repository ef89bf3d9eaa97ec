"""Job kinds: params refused before any credit is at stake, and the files each report yields."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain import Artifact
from orchestrator.exceptions import InvalidParams
from orchestrator.kinds import KINDS, artifacts_for, get_kind, validate_params
from orchestrator.observations import Track, UpstreamReport, UpstreamStatus

GOOD: dict[str, dict[str, Any]] = {
    "generate_music": {
        "customMode": False,
        "instrumental": False,
        "model": "V4_5",
        "prompt": "a calm piano piece",
    },
    "replace_section": {
        "taskId": "task-1",
        "audioId": "audio-1",
        "prompt": "a guitar solo",
        "tags": "rock",
        "title": "Solo",
        "infillStartS": 10.0,
        "infillEndS": 20.5,
        "fullLyrics": "la la la",
    },
    "music_video": {"taskId": "task-1", "audioId": "audio-1"},
    "extend": {"defaultParamFlag": False, "audioId": "audio-1", "model": "V4_5"},
    "wav": {"taskId": "task-1", "audioId": "audio-1"},
    "vocal_removal": {"taskId": "task-1", "audioId": "audio-1", "type": "split_stem"},
    "lyrics": {"prompt": "a song about rain"},
}

HOSTILE_IDS = [
    "../../etc/passwd",
    "..",
    ".",
    "",
    "/abs/path",
    "a\\b",
    "a/b",
    "..\\..\\windows",
    "x\x00y",
    "~/.ssh/id_rsa",
    "a" * 500,
    "élan/🎵",
]


def refused(kind: str, params: dict[str, Any]) -> str:
    with pytest.raises(InvalidParams) as info:
        validate_params(kind, params)
    return str(info.value)


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    return {**GOOD[kind], **changes}


def without(kind: str, name: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD[kind].items() if k != name}


# --- validate_params --------------------------------------------------------------------------


def test_good_params_cover_every_kind() -> None:
    assert set(GOOD) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_good_params_pass(kind: str) -> None:
    validate_params(kind, GOOD[kind])


def test_unknown_kind_lists_known_ones() -> None:
    message = refused("karaoke", {})
    assert "karaoke" in message
    for name in KINDS:
        assert name in message
    with pytest.raises(InvalidParams):
        get_kind("karaoke")


@pytest.mark.parametrize(
    ("kind", "name"),
    [(kind, name) for kind in sorted(KINDS) for name in KINDS[kind].required],
)
def test_each_required_field_is_required(kind: str, name: str) -> None:
    message = refused(kind, without(kind, name))
    assert kind in message
    assert name in message


def test_all_missing_fields_are_named_at_once() -> None:
    message = refused("music_video", {})
    assert "taskId" in message
    assert "audioId" in message


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_callback_url_is_refused(kind: str) -> None:
    assert "callBackUrl" in refused(kind, with_(kind, callBackUrl="https://evil.example/x"))


@pytest.mark.parametrize(
    ("kind", "name", "value", "expected"),
    [
        ("generate_music", "customMode", 1, "customMode must be a bool"),
        ("generate_music", "customMode", "false", "customMode must be a bool"),
        ("generate_music", "instrumental", 0, "instrumental must be a bool"),
        ("generate_music", "instrumental", None, "generate_music needs instrumental"),
        ("generate_music", "model", 4.5, "model must be a str"),
        ("generate_music", "prompt", ["a"], "prompt must be a str"),
        ("generate_music", "style", 1, "style must be a str"),
        ("generate_music", "title", {}, "title must be a str"),
        ("replace_section", "infillStartS", True, "infillStartS must be a number"),
        ("replace_section", "infillEndS", False, "infillEndS must be a number"),
        ("replace_section", "infillStartS", "10", "infillStartS must be a number"),
        ("replace_section", "infillEndS", None, "replace_section needs infillEndS"),
        ("replace_section", "taskId", 123, "taskId must be a str"),
        ("replace_section", "tags", ["rock"], "tags must be a str"),
        ("music_video", "audioId", 5, "audioId must be a str"),
        ("music_video", "author", 5, "author must be a str"),
    ],
)
def test_wrong_types(kind: str, name: str, value: Any, expected: str) -> None:
    assert expected in refused(kind, with_(kind, **{name: value}))


def test_numbers_may_be_int_or_float() -> None:
    validate_params("replace_section", with_("replace_section", infillStartS=0, infillEndS=6))
    validate_params("replace_section", with_("replace_section", infillStartS=1.5, infillEndS=61))


@pytest.mark.parametrize(
    ("kind", "name", "limit"),
    [
        (kind, name, max_len)
        for kind in sorted(KINDS)
        for name, (typ, max_len) in KINDS[kind].types.items()
        if max_len is not None
        # the non-custom prompt has its own, tighter limit (tested below)
        and not (kind == "generate_music" and name == "prompt")
    ],
)
def test_max_lengths(kind: str, name: str, limit: int) -> None:
    validate_params(kind, with_(kind, **{name: "x" * limit}))
    message = refused(kind, with_(kind, **{name: "x" * (limit + 1)}))
    assert f"{name} is {limit + 1} characters; at most {limit}" in message


def test_custom_mode_prompt_may_be_long() -> None:
    params = with_("generate_music", customMode=True, prompt="x" * 5000, style="s", title="t")
    validate_params("generate_music", params)
    assert "at most 5000" in refused("generate_music", {**params, "prompt": "x" * 5001})


def test_non_custom_needs_a_prompt() -> None:
    assert "needs a prompt" in refused("generate_music", without("generate_music", "prompt"))
    assert "needs a prompt" in refused("generate_music", with_("generate_music", prompt="   "))
    assert "needs a prompt" in refused("generate_music", with_("generate_music", prompt=""))


def test_non_custom_prompt_is_limited_to_500() -> None:
    validate_params("generate_music", with_("generate_music", prompt="x" * 500))
    message = refused("generate_music", with_("generate_music", prompt="x" * 501))
    assert "500" in message


def test_custom_mode_needs_style_and_title_and_lyrics_unless_instrumental() -> None:
    params = {**without("generate_music", "prompt"), "customMode": True}
    assert "needs prompt, style, title" in refused("generate_music", params)
    instrumental = {**params, "instrumental": True, "style": "jazz", "title": "T"}
    validate_params("generate_music", instrumental)
    assert "at most 80 with V4" in refused(
        "generate_music", {**instrumental, "model": "V4", "title": "x" * 81}
    )


@pytest.mark.parametrize("kind", ["generate_music", "extend"])
def test_the_model_is_one_the_upstream_knows(kind: str) -> None:
    assert "model must be one of V4, V4_5" in refused(kind, with_(kind, model="V9"))


def test_extend_with_its_own_params_needs_them_all() -> None:
    own = with_("extend", defaultParamFlag=True)
    assert "needs continueAt, prompt, style, title" in refused("extend", own)
    full = {**own, "continueAt": 30, "prompt": "more", "style": "pop", "title": "Longer"}
    validate_params("extend", full)
    assert "continueAt must be above 0" in refused("extend", {**full, "continueAt": 0})
    assert "extend with defaultParamFlag needs style" in refused("extend", {**full, "style": " "})


def test_lyrics_are_stored_as_text_files_from_data_urls() -> None:
    import base64

    texts = (("Rain", "[Verse]\nrain on the roof"), ("", "second"))
    out = artifacts_for("lyrics", UpstreamReport(UpstreamStatus.SUCCESS, "t", texts=texts))
    assert out is not None and [(a.name, a.media) for a in out] == [
        ("1-rain.txt", "text"),
        ("2-lyrics.txt", "text"),
    ]
    payload = out[0].url.split(",", 1)[1]
    assert base64.b64decode(payload).decode() == "[Verse]\nrain on the roof"
    assert artifacts_for("lyrics", UpstreamReport(UpstreamStatus.SUCCESS, "t")) is None
    assert "lyrics needs prompt" in refused("lyrics", {"prompt": "  "})


def test_vocal_removal_type_is_one_of_two() -> None:
    validate_params("vocal_removal", with_("vocal_removal", type="separate_vocal"))
    assert "type must be one of" in refused("vocal_removal", with_("vocal_removal", type="all"))


def test_replace_window_takes_two_decimals() -> None:
    params = with_("replace_section", infillStartS=10.123, infillEndS=20)
    assert "at most 2 decimals" in refused("replace_section", params)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 6), (10, 16), (10.0, 70.0), (100, 130.5), (0.0, 60)],
)
def test_replace_window_in_range(start: float, end: float) -> None:
    validate_params("replace_section", with_("replace_section", infillStartS=start, infillEndS=end))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (10, 10, "less than infillEndS"),
        (20, 10, "less than infillEndS"),
        (10, 15.99, "6..60"),
        (10, 70.01, "6..60"),
        (0, 5, "6..60"),
        (0, 120, "6..60"),
        (-10, 0, "must not be negative"),
        (float("nan"), 20, "infill"),
        (0, float("inf"), "infillEndS is inf"),  # not JSON: refused before the window check
    ],
)
def test_replace_window_refused(start: float, end: float, expected: str) -> None:
    params = with_("replace_section", infillStartS=start, infillEndS=end)
    assert expected in refused("replace_section", params)


@pytest.mark.parametrize("name", ["prompt", "fullLyrics"])
@pytest.mark.parametrize("blank", ["", "   "])
def test_replace_section_text_must_not_be_blank(name: str, blank: str) -> None:
    assert name in refused("replace_section", with_("replace_section", **{name: blank}))


def test_optional_fields_are_checked_only_when_present() -> None:
    validate_params("music_video", with_("music_video", author="me", domainName="example.org"))
    assert "author is 51 characters" in refused(
        "music_video", with_("music_video", author="a" * 51)
    )


# --- artifacts_for ----------------------------------------------------------------------------


def report(
    status: UpstreamStatus = UpstreamStatus.SUCCESS,
    task_id: str | None = "task-1",
    tracks: tuple[Track, ...] = (),
    video_url: str | None = None,
    files: tuple[tuple[str, str], ...] = (),
) -> UpstreamReport:
    return UpstreamReport(
        status=status, task_id=task_id, tracks=tracks, video_url=video_url, files=files
    )


def assert_safe(artifacts: tuple[Artifact, ...]) -> None:
    for artifact in artifacts:
        assert "/" not in artifact.name
        assert "\\" not in artifact.name
        assert "\x00" not in artifact.name
        assert not artifact.name.startswith(".")
        assert artifact.name not in ("", ".", "..")
        assert len(artifact.name) <= 100


def test_mp4_yields_one_video_named_for_people() -> None:
    out = artifacts_for("music_video", report(video_url="http://cdn/v.mp4"))
    assert out == (Artifact(name="video.mp4", url="http://cdn/v.mp4", media="video"),)


def test_a_wav_and_stems_are_named_by_what_they_are() -> None:
    wav = report(files=(("audio_wav", "http://cdn/w.wav"),))
    assert artifacts_for("wav", wav) == (
        Artifact(name="audio.wav", url="http://cdn/w.wav", media="audio"),
    )
    stems = report(files=(("vocal", "http://cdn/v.mp3"), ("instrumental", "http://cdn/i.mp3")))
    assert [a.name for a in artifacts_for("vocal_removal", stems) or ()] == [
        "vocals.mp3",
        "instrumental.mp3",
    ]
    assert artifacts_for("wav", report(files=(("vocal", "http://cdn/v.mp3"),))) is None


def test_mp4_without_url_or_task_id_is_none() -> None:
    assert artifacts_for("music_video", report(video_url=None)) is None
    assert artifacts_for("music_video", report(video_url="")) is None
    assert artifacts_for("music_video", report(task_id=None, video_url="http://cdn/v")) is None


def test_mp4_name_never_comes_from_the_url() -> None:
    out = artifacts_for("music_video", report(video_url="http://cdn/../../evil.sh"))
    assert out is not None
    assert out[0].name == "video.mp4"


@pytest.mark.parametrize("kind", ["generate_music", "replace_section"])
def test_music_yields_mp3_and_jpeg_per_track(kind: str) -> None:
    tracks = (
        Track(id="t1", audio_url="http://cdn/1.mp3", image_url="http://cdn/1.jpeg", title="Rain"),
        Track(id="t2", audio_url="http://cdn/2.mp3", image_url="http://cdn/2.jpeg", title="Rain"),
    )
    out = artifacts_for(kind, report(tracks=tracks))
    assert out == (
        Artifact(name="1-rain.mp3", url="http://cdn/1.mp3", media="audio"),
        Artifact(name="1-rain.jpeg", url="http://cdn/1.jpeg", media="image"),
        Artifact(name="2-rain.mp3", url="http://cdn/2.mp3", media="audio"),
        Artifact(name="2-rain.jpeg", url="http://cdn/2.jpeg", media="image"),
    )


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("A Calm Piano Piece", "1-a-calm-piano-piece.mp3"),
        ("Élan / 🎵 ../../etc", "1-elan-etc.mp3"),
        (None, "1-track.mp3"),
        ("🎵", "1-track.mp3"),
        ("x" * 300, f"1-{'x' * 40}.mp3"),
    ],
)
def test_a_track_file_is_named_from_its_number_and_title(title: str | None, name: str) -> None:
    out = artifacts_for(
        "generate_music", report(tracks=(Track(id="t", audio_url="u", title=title),))
    )
    assert out is not None and out[0].name == name


def test_track_without_image_yields_audio_only() -> None:
    tracks = (Track(id="t1", audio_url="http://cdn/1.mp3"),)
    out = artifacts_for("generate_music", report(tracks=tracks))
    assert out == (Artifact(name="1-track.mp3", url="http://cdn/1.mp3", media="audio"),)


def test_missing_audio_url_is_none() -> None:
    tracks = (
        Track(id="t1", audio_url="http://cdn/1.mp3"),
        Track(id="t2", audio_url=None, image_url="http://cdn/2.jpeg"),
    )
    assert artifacts_for("generate_music", report(tracks=tracks)) is None
    assert artifacts_for("generate_music", report(tracks=(Track(id="t", audio_url=""),))) is None


def test_no_tracks_is_none() -> None:
    assert artifacts_for("generate_music", report(tracks=())) is None


def test_unknown_kind_in_artifacts_for() -> None:
    with pytest.raises(InvalidParams):
        artifacts_for("karaoke", report())


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_task_id_gives_a_safe_video_name(hostile: str) -> None:
    out = artifacts_for("music_video", report(task_id=hostile or "x", video_url="http://v"))
    assert out is not None
    assert_safe(out)
    assert out[0].name.endswith(".mp4")


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_track_id_gives_safe_names(hostile: str) -> None:
    tracks = (Track(id=hostile, audio_url="http://a", image_url="http://i"),)
    out = artifacts_for("generate_music", report(tracks=tracks))
    assert out is not None
    assert_safe(out)
    assert [a.name.rsplit(".", 1)[1] for a in out] == ["mp3", "jpeg"]


def test_distinct_hostile_ids_get_distinct_names() -> None:
    tracks = tuple(Track(id=i, audio_url="http://a") for i in ("a/b", "a_b", "a\\b", "a?b"))
    out = artifacts_for("generate_music", report(tracks=tracks))
    assert out is not None
    assert len({a.name for a in out}) == 4


def test_every_kind_has_its_endpoints_with_the_provider() -> None:
    from orchestrator.kinds import KINDS
    from orchestrator.providers.endpoints import ENDPOINTS

    assert set(ENDPOINTS) == set(KINDS)
