"""Upstream payloads -> :class:`UpstreamReport`: one piece of code for polls and callbacks.

record-info answers speak camelCase (``audioUrl``, ``modelName``); callbacks speak snake_case
(``audio_url``, ``model_name``) with ``source_`` fallbacks. Each normalised field lists every
name it may arrive under, in order of preference, so the same functions read both.

Nothing here does I/O or knows about HTTP. Shape problems raise :class:`ShapeError` with a
message safe to show; the caller translates it (UpstreamProtocolError for a poll,
CallbackRejected for a callback).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.jsonvalues import is_storable_word
from orchestrator.observations import Track, UpstreamReport, UpstreamStatus
from orchestrator.providers.timestamps import timestamp_iso

#: longest upstream text (msg, errorMessage) kept in a report or an exception message
MAX_TEXT = 200
#: most tracks accepted in one payload (every generate makes 2)
MAX_TRACKS = 50
#: upstream codes are HTTP-like; anything outside this is not a code
CODE_RANGE = range(0, 100_000)

# field -> names it arrives under, preferred first
_AUDIO = ("audio_url", "audioUrl", "source_audio_url", "sourceAudioUrl")
_STREAM = (
    "stream_audio_url",
    "streamAudioUrl",
    "source_stream_audio_url",
    "sourceStreamAudioUrl",
)
_IMAGE = ("image_url", "imageUrl", "source_image_url", "sourceImageUrl")
_MODEL = ("model_name", "modelName")
_CREATED = ("createTime", "create_time", "createdAt", "created_at")
_VIDEO = ("video_url", "videoUrl")


class ShapeError(ValueError):
    """The payload does not have the documented shape."""


def clip(text: object, limit: int = MAX_TEXT) -> str | None:
    """A short single-line version of an upstream text, or None if it is not a string."""
    if not isinstance(text, str):
        return None
    flat = " ".join("".join(c if c.isprintable() else " " for c in text[: limit * 4]).split())
    if len(flat) > limit:
        return flat[: limit - 1] + "…"
    return flat


def as_code(value: object) -> int | None:
    """An upstream numeric code (int or digit string) within :data:`CODE_RANGE`, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (0 < len(text) <= 6 and text.isdigit() and text.isascii()):
            return None
        value = int(text)
    if isinstance(value, int) and value in CODE_RANGE:
        return value
    return None


def _url(item: Mapping[str, Any], names: Sequence[str], where: str) -> str | None:
    """The first non-empty URL among ``names``; empty strings count as absent."""
    for name in names:
        value = item.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ShapeError(f"{where}.{name} must be a string or null")
        value = value.strip()
        if value and not is_storable_word(value):
            raise ShapeError(f"{where}.{name} has control characters or broken Unicode")
        if value:
            return value
    return None


def _text(item: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """Descriptive text (title, tags, model): wrong types become None, never an error."""
    for name in names:
        value = item.get(name)
        if isinstance(value, str) and value.strip():
            return value[:1000]
    return None


def _duration(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def track_from(item: object, where: str = "track") -> Track:
    """One track from a record-info ``sunoData`` entry or a callback ``data`` entry."""
    if not isinstance(item, Mapping):
        raise ShapeError(f"{where} must be an object")
    track_id = item.get("id")
    if not isinstance(track_id, str) or not track_id.strip():
        raise ShapeError(f"{where}.id must be a non-empty string")
    if not is_storable_word(track_id.strip()):
        raise ShapeError(f"{where}.id has control characters or broken Unicode")
    created = None
    for name in _CREATED:
        created = timestamp_iso(item.get(name))
        if created is not None:
            break
    return Track(
        id=track_id.strip(),
        audio_url=_url(item, _AUDIO, where),
        stream_url=_url(item, _STREAM, where),
        image_url=_url(item, _IMAGE, where),
        title=_text(item, ("title",)),
        tags=_text(item, ("tags",)),
        duration=_duration(item.get("duration")),
        model=_text(item, _MODEL),
        created_at=created,
    )


def tracks_from(items: object, where: str) -> tuple[Track, ...]:
    """A track list; null or absent is an empty list."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ShapeError(f"{where} must be a list or null")
    if len(items) > MAX_TRACKS:
        raise ShapeError(f"{where} has {len(items)} entries; at most {MAX_TRACKS}")
    return tuple(track_from(item, f"{where}[{i}]") for i, item in enumerate(items))


def video_url_from(item: Mapping[str, Any], where: str) -> str | None:
    return _url(item, _VIDEO, where)


#: result fields that name the task's input, not a file it made
_INPUT_FILES = frozenset({"origin", "source", "callback", "stream"})
_URL_SUFFIX = re.compile(r"(?:_url|Url|URL)$")


def _label(field: str) -> str:
    """``audioWavUrl`` / ``audio_wav_url`` -> ``audio_wav``."""
    stem = _URL_SUFFIX.sub("", field)
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", stem).lower()


def files_from(item: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """A media task's result files: every ``...Url`` / ``..._url`` field, by label (a
    vocal removal's stems, a WAV, a video), without the ones naming its input."""
    found: list[tuple[str, str]] = []
    for field in item:
        if not isinstance(field, str) or not _URL_SUFFIX.search(field) or len(field) > 60:
            continue
        label = _label(field)
        if not label or label in _INPUT_FILES or any(label == seen for seen, _ in found):
            continue
        url = _url(item, (field,), where)
        if url is not None:
            found.append((label, url))
    return tuple(found)


def _failed_word(word: str) -> bool:
    return word.endswith("_FAILED") or word.endswith("_ERROR")


def _progress_from_tracks(tracks: tuple[Track, ...]) -> UpstreamStatus:
    """Where a task stands judging by its tracks alone (for CALLBACK_EXCEPTION)."""
    with_audio = sum(1 for t in tracks if t.audio_url)
    if tracks and with_audio == len(tracks):
        return UpstreamStatus.SUCCESS
    if with_audio:
        return UpstreamStatus.FIRST_SUCCESS
    return UpstreamStatus.PENDING


_MUSIC_STATUS = {
    "PENDING": UpstreamStatus.PENDING,
    "TEXT_SUCCESS": UpstreamStatus.TEXT_SUCCESS,
    "FIRST_SUCCESS": UpstreamStatus.FIRST_SUCCESS,
    "SUCCESS": UpstreamStatus.SUCCESS,
}


def _word_and_response(data: Mapping[str, Any], field: str) -> tuple[str, Mapping[str, Any] | None]:
    """A record-info ``data``'s status word (``field``) and its ``response`` (None: null)."""
    word = data.get(field)
    if not isinstance(word, str) or not word.strip():
        raise ShapeError(f"data.{field} must be a non-empty string")
    response = data.get("response")
    if response is not None and not isinstance(response, Mapping):
        raise ShapeError("data.response must be an object or null")
    return word.strip(), response


def music_record_report(data: Mapping[str, Any], task_id: str) -> UpstreamReport:
    """``generate/record-info`` ``data`` -> report."""
    word, response = _word_and_response(data, "status")
    tracks: tuple[Track, ...] = ()
    if response is not None:
        tracks = tracks_from(response.get("sunoData"), "data.response.sunoData")
    upper = word.upper()
    if upper in _MUSIC_STATUS:
        status = _MUSIC_STATUS[upper]
    elif upper == "CALLBACK_EXCEPTION":
        # the upstream failed to deliver its callback; the generation itself may be fine
        status = _progress_from_tracks(tracks)
    elif _failed_word(upper):
        status = UpstreamStatus.FAILED
    else:
        raise ShapeError(f"unknown record-info status {clip(word, 60)!r}")
    return _report(status, data, task_id, word, tracks=tracks)


#: most lyrics variants and characters per text accepted in one payload
MAX_TEXTS = 10
MAX_LYRICS = 20_000


def texts_from(items: object, where: str) -> tuple[tuple[str, str], ...]:
    """Lyrics variants ``[{text, title, status?, errorMessage?}]`` as (title, text); null or
    absent is none; a variant without text (one that failed) is left out."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ShapeError(f"{where} must be a list or null")
    if len(items) > MAX_TEXTS:
        raise ShapeError(f"{where} has {len(items)} entries; at most {MAX_TEXTS}")
    found: list[tuple[str, str]] = []
    for n, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ShapeError(f"{where}[{n}] must be an object")
        text = item.get("text")
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        if not isinstance(text, str) or len(text) > MAX_LYRICS:
            raise ShapeError(f"{where}[{n}].text must be a string of at most {MAX_LYRICS}")
        if "\x00" in text or not is_storable_word(text.replace("\n", " ").replace("\t", " ")):
            raise ShapeError(f"{where}[{n}].text has control characters or broken Unicode")
        found.append((clip(item.get("title"), 100) or "", text))
    return tuple(found)


def lyrics_record_report(data: Mapping[str, Any], task_id: str) -> UpstreamReport:
    """``lyrics/record-info`` ``data`` -> report: done when a variant has its text."""
    word, response = _word_and_response(data, "status")
    texts: tuple[tuple[str, str], ...] = ()
    if response is not None:
        texts = texts_from(response.get("data"), "data.response.data")
    upper = word.upper()
    if upper in ("PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS"):
        status = UpstreamStatus.PENDING
    elif upper in ("SUCCESS", "CALLBACK_EXCEPTION"):
        status = UpstreamStatus.SUCCESS if texts else UpstreamStatus.PENDING
    elif _failed_word(upper):
        status = UpstreamStatus.FAILED
    else:
        raise ShapeError(f"unknown record-info status {clip(word, 60)!r}")
    report = _report(status, data, task_id, word)
    return replace(report, texts=texts)


def lyrics_callback_report(body: object) -> UpstreamReport:
    """A lyrics callback (``data.taskId``, ``data.data`` the variants) -> report."""
    code, msg, data, task_id = callback_envelope(body)
    kind = data.get("callbackType")
    if kind is not None and not isinstance(kind, str):
        raise ShapeError("callback data.callbackType must be a string")
    texts = texts_from(data.get("data"), "callback data.data")
    if code == 200 and kind != "error":
        # only a complete answer with its texts is an outcome; the poll stays authoritative
        status = UpstreamStatus.SUCCESS if texts else UpstreamStatus.PENDING
        return UpstreamReport(status, task_id, texts=texts, raw_status=clip(kind, 40) or "200")
    return UpstreamReport(
        status=UpstreamStatus.FAILED,
        task_id=task_id,
        error_code=code if code != 200 else None,
        error_message=clip(data.get("error")) or clip(msg) or "lyrics generation failed",
        raw_status=clip(kind, 40) if kind is not None else str(code),
    )


def mp4_record_report(
    data: Mapping[str, Any], task_id: str, needs: str = "video"
) -> UpstreamReport:
    """``mp4/record-info`` (and wav/vocal-removal, the same shape) ``data`` -> report;
    ``needs``: the file label without which a success is not done yet ("" for any file)."""
    word, response = _word_and_response(data, "successFlag")
    files: tuple[tuple[str, str], ...] = ()
    video_url = None
    if response is not None:
        video_url = video_url_from(response, "data.response")
        files = files_from(response, "data.response")
    upper = word.upper()
    if upper == "PENDING":
        status = UpstreamStatus.PENDING
    elif upper in ("SUCCESS", "CALLBACK_EXCEPTION"):
        done = any(label == needs for label, _ in files) if needs else bool(files)
        status = UpstreamStatus.SUCCESS if done else UpstreamStatus.PENDING
    elif _failed_word(upper):
        status = UpstreamStatus.FAILED
    else:
        raise ShapeError(f"unknown record-info successFlag {clip(word, 60)!r}")
    return _report(status, data, task_id, word, video_url=video_url, files=files)


def _report(
    status: UpstreamStatus,
    data: Mapping[str, Any],
    task_id: str,
    word: str,
    *,
    tracks: tuple[Track, ...] = (),
    video_url: str | None = None,
    files: tuple[tuple[str, str], ...] = (),
) -> UpstreamReport:
    reported_id = data.get("taskId")
    error_code = error_message = None
    if status is UpstreamStatus.FAILED:
        error_code = as_code(data.get("errorCode"))
        error_message = clip(data.get("errorMessage")) or word
    return UpstreamReport(
        status=status,
        task_id=reported_id if isinstance(reported_id, str) and reported_id else task_id,
        tracks=tracks,
        video_url=video_url,
        files=files,
        error_code=error_code,
        error_message=error_message,
        raw_status=word[:60],
    )


# --- callbacks -------------------------------------------------------------------------------

_CALLBACK_TYPES = {
    "text": UpstreamStatus.TEXT_SUCCESS,
    "first": UpstreamStatus.FIRST_SUCCESS,
    "complete": UpstreamStatus.SUCCESS,
    "error": UpstreamStatus.FAILED,
}


def callback_envelope(body: object) -> tuple[int, str | None, Mapping[str, Any], str]:
    """Check a callback's envelope: ``(code, msg, data, task_id)``."""
    if not isinstance(body, Mapping):
        raise ShapeError("callback body must be a JSON object")
    code = body.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise ShapeError("callback code must be an integer")
    if code not in CODE_RANGE:
        raise ShapeError("callback code is out of range")
    msg = body.get("msg")
    if msg is not None and not isinstance(msg, str):
        raise ShapeError("callback msg must be a string")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise ShapeError("callback data must be an object")
    task_id = data.get("task_id")
    if task_id is None:
        task_id = data.get("taskId")  # lyrics callbacks say taskId
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 200:
        raise ShapeError("callback data.task_id must be a non-empty string")
    if not is_storable_word(task_id.strip()):
        raise ShapeError("callback data.task_id has control characters or broken Unicode")
    return code, msg, data, task_id.strip()


def music_callback_report(body: object) -> UpstreamReport:
    """A music-family callback (generate, extend, replace section) -> report."""
    code, msg, data, task_id = callback_envelope(body)
    kind = data.get("callbackType")
    if kind is not None and not isinstance(kind, str):
        raise ShapeError("callback data.callbackType must be a string")
    if code == 200:
        if kind not in _CALLBACK_TYPES:
            shown = "missing" if kind is None else repr(clip(kind, 40))
            raise ShapeError(
                f"callback data.callbackType is {shown}; expected text, first, complete or error"
            )
        status = _CALLBACK_TYPES[kind]
    else:
        status = UpstreamStatus.FAILED
    tracks = tracks_from(data.get("data"), "callback data.data")
    error_code = error_message = None
    if status is UpstreamStatus.FAILED:
        error_code = code if code != 200 else None
        error_message = clip(data.get("error")) or clip(msg) or "generation failed"
    return UpstreamReport(
        status=status,
        task_id=task_id,
        tracks=tracks,
        error_code=error_code,
        error_message=error_message,
        raw_status=clip(kind, 40) if kind is not None else str(code),
    )


def mp4_callback_report(body: object, needs: str = "video") -> UpstreamReport:
    """A music-video (or WAV, vocal-removal) callback -> report."""
    code, msg, data, task_id = callback_envelope(body)
    video_url = video_url_from(data, "callback data")
    info = data.get("vocal_removal_info")
    files = files_from(info if isinstance(info, Mapping) else data, "callback data")
    if code == 200:
        # a success without its URL tells nothing new; the poll stays authoritative
        done = any(label == needs for label, _ in files) if needs else bool(files)
        status = UpstreamStatus.SUCCESS if done else UpstreamStatus.PENDING
        return UpstreamReport(
            status=status,
            task_id=task_id,
            video_url=video_url,
            files=files,
            raw_status=str(code),
        )
    return UpstreamReport(
        status=UpstreamStatus.FAILED,
        task_id=task_id,
        video_url=video_url,
        files=files,
        error_code=code,
        error_message=clip(data.get("error")) or clip(msg) or "music video failed",
        raw_status=str(code),
    )
