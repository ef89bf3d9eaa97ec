"""Submit parameter validation, as documented, without looking at other tasks.

Checks that need the task store (an unknown ``taskId``/``audioId``, a replace window longer
than half the track, a second music video of one audio) live in the engine. A check returns
a :class:`Rejection` naming the reason (the profile turns it into a code) and the field.

``callBackUrl`` is required by every kind (kie.ai answers 422 without it; the sandbox does
the same on both profiles, with each profile's "missing field" code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.sandbox.kinds import Kind
from orchestrator.sandbox.profiles import Reason

MODELS: tuple[str, ...] = ("V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5")
MODEL_NAMES: dict[str, str] = {
    "V4": "chirp-v4",
    "V4_5": "chirp-v4-5",
    "V4_5PLUS": "chirp-v4-5-plus",
    "V4_5ALL": "chirp-v4-5-all",
    "V5": "chirp-v5",
    "V5_5": "chirp-v5-5",
}
NON_CUSTOM_PROMPT_MAX = 500
VOCAL_REMOVAL_TYPES: tuple[str, ...] = ("separate_vocal", "split_stem")
VIDEO_TEXT_MAX = 50
REPLACE_WINDOW_MIN_S = 6.0
REPLACE_WINDOW_MAX_S = 60.0


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    field: str


def custom_limits(model: str) -> dict[str, int]:
    """Max lengths in custom mode: V4 is stricter than the newer models."""
    if model == "V4":
        return {"prompt": 3000, "style": 200, "title": 80}
    return {"prompt": 5000, "style": 1000, "title": 100}


def _missing(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    return value is None or (isinstance(value, str) and not value.strip())


def _require(body: dict[str, Any], *names: str) -> Rejection | None:
    for name in names:
        if _missing(body, name):
            return Rejection("missing_field", name)
    return None


def _strings(body: dict[str, Any], *names: str) -> Rejection | None:
    for name in names:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            return Rejection("invalid", name)
    return None


def _bools(body: dict[str, Any], *names: str) -> Rejection | None:
    for name in names:
        if not isinstance(body.get(name), bool):
            return Rejection("missing_field" if body.get(name) is None else "invalid", name)
    return None


def _lengths(body: dict[str, Any], limits: dict[str, int]) -> Rejection | None:
    for name, limit in limits.items():
        value = body.get(name)
        if isinstance(value, str) and len(value) > limit:
            return Rejection("too_long", name)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _two_decimals(value: float) -> bool:
    return abs(value * 100 - round(value * 100)) < 1e-6


def _callback_url(body: dict[str, Any]) -> Rejection | None:
    if _missing(body, "callBackUrl"):
        return Rejection("missing_field", "callBackUrl")
    url = body["callBackUrl"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Rejection("invalid", "callBackUrl")
    return None


def _model(body: dict[str, Any]) -> Rejection | None:
    if _missing(body, "model"):
        return Rejection("missing_field", "model")
    if body["model"] not in MODELS:
        return Rejection("invalid", "model")
    return None


def _generate(body: dict[str, Any]) -> Rejection | None:
    rejection = (
        _bools(body, "customMode", "instrumental")
        or _model(body)
        or _strings(body, "prompt", "style", "title", "negativeTags", "personaId")
    )
    if rejection:
        return rejection
    if body.get("vocalGender") not in (None, "m", "f"):
        return Rejection("invalid", "vocalGender")
    for name in ("styleWeight", "weirdnessConstraint", "audioWeight"):
        if name in body and body[name] is not None:
            number = _number(body[name])
            if number is None or not 0.0 <= number <= 1.0:
                return Rejection("invalid", name)
    if not body["customMode"]:
        return _require(body, "prompt") or _lengths(body, {"prompt": NON_CUSTOM_PROMPT_MAX})
    required = ("style", "title") if body["instrumental"] else ("prompt", "style", "title")
    return _require(body, *required) or _lengths(body, custom_limits(body["model"]))


def _extend(body: dict[str, Any]) -> Rejection | None:
    rejection = (
        _bools(body, "defaultParamFlag")
        or _require(body, "audioId")
        or _strings(body, "audioId", "prompt", "style", "title")
        or _model(body)
    )
    if rejection or not body["defaultParamFlag"]:
        return rejection
    rejection = _require(body, "continueAt", "prompt", "style", "title")
    if rejection:
        return rejection
    continue_at = _number(body["continueAt"])
    if continue_at is None or continue_at <= 0:
        return Rejection("invalid", "continueAt")
    return _lengths(body, custom_limits(body["model"]))


def _replace_section(body: dict[str, Any]) -> Rejection | None:
    names = ("taskId", "audioId", "prompt", "tags", "title", "fullLyrics")
    rejection = (
        _require(body, *names, "infillStartS", "infillEndS")
        or _strings(body, *names, "negativeTags")
        or _lengths(body, {"prompt": 5000, "tags": 1000, "title": 100, "fullLyrics": 5000})
    )
    if rejection:
        return rejection
    start, end = _number(body["infillStartS"]), _number(body["infillEndS"])
    if start is None or start < 0 or not _two_decimals(start):
        return Rejection("invalid", "infillStartS")
    if end is None or end <= start or not _two_decimals(end):
        return Rejection("invalid", "infillEndS")
    if not REPLACE_WINDOW_MIN_S <= end - start <= REPLACE_WINDOW_MAX_S:
        return Rejection("invalid", "infillEndS")
    return None


def _music_video(body: dict[str, Any]) -> Rejection | None:
    return (
        _require(body, "taskId", "audioId")
        or _strings(body, "taskId", "audioId", "author", "domainName")
        or _lengths(body, {"author": VIDEO_TEXT_MAX, "domainName": VIDEO_TEXT_MAX})
    )


def _wav(body: dict[str, Any]) -> Rejection | None:
    return _require(body, "taskId", "audioId") or _strings(body, "taskId", "audioId")


def _vocal_removal(body: dict[str, Any]) -> Rejection | None:
    rejection = _wav(body)
    if rejection:
        return rejection
    if body.get("type") not in (None, *VOCAL_REMOVAL_TYPES):
        return Rejection("invalid", "type")
    return None


#: longest lyrics prompt [seen: provider pages say 200 characters]
LYRICS_PROMPT_MAX = 200


def _lyrics(body: dict[str, Any]) -> Rejection | None:
    return (
        _require(body, "prompt")
        or _strings(body, "prompt")
        or _lengths(body, {"prompt": LYRICS_PROMPT_MAX})
    )


_VALIDATORS: dict[str, Callable[[dict[str, Any]], Rejection | None]] = {
    "generate_music": _generate,
    "extend": _extend,
    "replace_section": _replace_section,
    "music_video": _music_video,
    "wav": _wav,
    "vocal_removal": _vocal_removal,
    "lyrics": _lyrics,
}


def validate(kind: Kind, body: Any) -> Rejection | None:
    """The first problem with a submit body, or None when it is acceptable."""
    if not isinstance(body, dict):
        return Rejection("invalid", "request body (a JSON object)")
    return _callback_url(body) or _VALIDATORS[kind](body)
