"""The job kinds the orchestrator knows: required params, and the files each yields.

Where each kind is sent is the provider's business (:mod:`orchestrator.providers.endpoints`).

Pure data and pure functions: no I/O. Params use the upstream's own field names; the
orchestrator fills ``callBackUrl`` itself.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.domain import Artifact
from orchestrator.exceptions import InvalidParams
from orchestrator.jsonvalues import json_problem
from orchestrator.observations import UpstreamReport

#: the models the upstream accepts (generate, extend)
MODELS: tuple[str, ...] = ("V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5")


@dataclass(frozen=True)
class Kind:
    name: str
    #: "music" (record-info with status + sunoData tracks), "mp4" (successFlag + result
    #: URLs: music video, WAV, vocal removal) or "lyrics" (status + texts, no files upstream)
    family: str
    required: tuple[str, ...]
    #: value checks: field -> (type, max length or None)
    types: Mapping[str, tuple[type | tuple[type, ...], int | None]]
    #: an mp4-family kind's result file without which a success is not done ("": any file)
    needs: str = ""


# lengths of the music text fields depend on the mode and model: the kind's rule checks them
_MUSIC_TEXT: Mapping[str, tuple[type | tuple[type, ...], int | None]] = {
    "prompt": (str, None),
    "style": (str, None),
    "title": (str, None),
    "negativeTags": (str, None),
}
_SOURCE: Mapping[str, tuple[type | tuple[type, ...], int | None]] = {
    "taskId": (str, None),
    "audioId": (str, None),
}
_NUMBER = (int, float)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            name="generate_music",
            family="music",
            required=("customMode", "instrumental", "model"),
            types={
                "customMode": (bool, None),
                "instrumental": (bool, None),
                "model": (str, None),
                **_MUSIC_TEXT,
                "personaId": (str, None),
                "vocalGender": (str, None),
                "styleWeight": (_NUMBER, None),
                "weirdnessConstraint": (_NUMBER, None),
                "audioWeight": (_NUMBER, None),
            },
        ),
        Kind(
            name="extend",
            family="music",
            required=("defaultParamFlag", "audioId", "model"),
            types={
                "defaultParamFlag": (bool, None),
                "audioId": (str, None),
                "model": (str, None),
                # continueAt counts only with defaultParamFlag (its rule checks it then)
                "prompt": (str, None),
                "style": (str, None),
                "title": (str, None),
            },
        ),
        Kind(
            name="replace_section",
            family="music",
            required=(
                "taskId",
                "audioId",
                "prompt",
                "tags",
                "title",
                "infillStartS",
                "infillEndS",
                "fullLyrics",
            ),
            types={
                **_SOURCE,
                "prompt": (str, 5000),
                "tags": (str, 1000),
                "title": (str, 100),
                "infillStartS": ((int, float), None),
                "infillEndS": ((int, float), None),
                "fullLyrics": (str, 5000),
                "negativeTags": (str, None),
            },
        ),
        Kind(
            name="music_video",
            family="mp4",
            required=("taskId", "audioId"),
            types={**_SOURCE, "author": (str, 50), "domainName": (str, 50)},
            needs="video",
        ),
        Kind(
            name="wav",
            family="mp4",
            required=("taskId", "audioId"),
            types=_SOURCE,
            needs="audio_wav",
        ),
        Kind(
            name="lyrics",
            family="lyrics",
            required=("prompt",),
            types={"prompt": (str, 200)},
        ),
        Kind(
            name="vocal_removal",
            family="mp4",
            required=("taskId", "audioId"),
            types={**_SOURCE, "type": (str, None)},
        ),
    )
}

#: vocal_removal ``type`` values: two stems, or every instrument
VOCAL_REMOVAL_TYPES: tuple[str, ...] = ("separate_vocal", "split_stem")


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise InvalidParams(f"unknown kind {name!r} (known: {known})") from None


def validate_params(
    kind_name: str, params: Mapping[str, Any], unresolved: frozenset[str] = frozenset()
) -> None:
    """Refuse params the upstream would refuse anyway, before any credit is at stake.

    ``unresolved`` names params that still hold a pipeline reference: they must be present,
    and their values are checked once resolved (when the job is released)."""
    kind = get_kind(kind_name)
    problem = json_problem(dict(params), "params")
    if problem:
        raise InvalidParams(f"{problem}: params must be strict JSON values")
    if "callBackUrl" in params:
        raise InvalidParams("callBackUrl is set by the orchestrator; leave it out")
    # as the upstream reads it: null or blank is missing
    missing = [name for name in kind.required if _blank(params.get(name))]
    if missing:
        raise InvalidParams(f"{kind.name} needs {', '.join(missing)}")
    for name, (typ, max_len) in kind.types.items():
        if name not in params or name in unresolved:
            continue
        value = params[name]
        if value is None and name not in kind.required:
            continue  # an optional field sent as null is left out upstream
        # bool is an int subclass: a number field must not take true/false
        if (typ is not bool and isinstance(value, bool)) or not isinstance(value, typ):
            want = typ.__name__ if isinstance(typ, type) else "number"
            raise InvalidParams(f"{name} must be a {want}, got {value!r}")
        if max_len is not None and isinstance(value, str) and len(value) > max_len:
            raise InvalidParams(f"{name} is {len(value)} characters; at most {max_len}")
    rule = _RULES.get(kind.name)
    if rule is not None:
        rule(params, unresolved)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _nonempty(params: Mapping[str, Any], kind: str, *names: str) -> None:
    for name in names:
        if _blank(params.get(name)):
            raise InvalidParams(f"{kind} needs a non-empty {name}")


def _model(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    if "model" not in unresolved and params["model"] not in MODELS:
        raise InvalidParams(f"model must be one of {', '.join(MODELS)}, got {params['model']!r}")


def _custom_limits(params: Mapping[str, Any]) -> None:
    """Custom-mode lengths: V4 is stricter than the newer models."""
    v4 = params["model"] == "V4"
    limits = {"prompt": 3000, "style": 200, "title": 80} if v4 else _CUSTOM_LIMITS
    for name, limit in limits.items():
        value = params.get(name)
        if isinstance(value, str) and len(value) > limit:
            model = " with V4" if v4 else ""
            raise InvalidParams(f"{name} is {len(value)} characters; at most {limit}{model}")


_CUSTOM_LIMITS = {"prompt": 5000, "style": 1000, "title": 100}


def _generate_rules(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    _model(params, unresolved)
    gender = params.get("vocalGender")
    if "vocalGender" not in unresolved and gender not in (None, "m", "f"):
        raise InvalidParams(f"vocalGender must be m or f, got {gender!r}")
    for name in ("styleWeight", "weirdnessConstraint", "audioWeight"):
        value = params.get(name)
        if name not in unresolved and value is not None and not 0.0 <= float(value) <= 1.0:
            raise InvalidParams(f"{name} must be between 0 and 1, got {value!r}")
    if unresolved & {"customMode", "instrumental", "prompt", "style", "title", "model"}:
        return  # the rules between fields wait for the resolved values
    if params["customMode"] is False:
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidParams("generate_music without customMode needs a prompt")
        if len(prompt) > 500:
            raise InvalidParams("prompt is limited to 500 characters without customMode")
        return
    needed = ("style", "title") if params["instrumental"] else ("prompt", "style", "title")
    missing = [name for name in needed if not str(params.get(name) or "").strip()]
    if missing:
        raise InvalidParams(f"generate_music in customMode needs {', '.join(missing)}")
    _custom_limits(params)


def _extend_rules(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    _model(params, unresolved)
    if unresolved or params["defaultParamFlag"] is False:
        return  # without custom params the source track's own are used
    missing = [n for n in ("continueAt", "prompt", "style", "title") if _blank(params.get(n))]
    if missing:
        raise InvalidParams(f"extend with defaultParamFlag needs {', '.join(missing)}")
    _nonempty(params, "extend", "prompt", "style", "title")
    if isinstance(params["continueAt"], bool) or not isinstance(params["continueAt"], _NUMBER):
        raise InvalidParams(f"continueAt must be a number, got {params['continueAt']!r}")
    if not float(params["continueAt"]) > 0:
        raise InvalidParams(f"continueAt must be above 0 s, got {params['continueAt']!r}")
    _custom_limits(params)


def _two_decimals(value: float) -> bool:
    return abs(value * 100 - round(value * 100)) < 1e-6


def _replace_rules(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    if unresolved & {"infillStartS", "infillEndS"}:
        return
    start, end = float(params["infillStartS"]), float(params["infillEndS"])
    if start < 0:
        raise InvalidParams(f"infillStartS must not be negative, got {start:g}")
    if not start < end:
        raise InvalidParams("infillStartS must be less than infillEndS")
    if not (_two_decimals(start) and _two_decimals(end)):
        raise InvalidParams("infillStartS and infillEndS take at most 2 decimals")
    if not 6 <= end - start <= 60:
        raise InvalidParams("the replaced window (infillEndS - infillStartS) must be 6..60 s")
    _nonempty(params, "replace_section", *sorted({"prompt", "fullLyrics"} - unresolved))


def _vocal_removal_rules(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    kind = params.get("type")
    if "type" not in unresolved and kind is not None and kind not in VOCAL_REMOVAL_TYPES:
        raise InvalidParams(f"type must be one of {', '.join(VOCAL_REMOVAL_TYPES)}, got {kind!r}")


def _lyrics_rules(params: Mapping[str, Any], unresolved: frozenset[str]) -> None:
    if "prompt" not in unresolved:
        _nonempty(params, "lyrics", "prompt")


_RULES: dict[str, Callable[[Mapping[str, Any], frozenset[str]], None]] = {
    "lyrics": _lyrics_rules,
    "generate_music": _generate_rules,
    "extend": _extend_rules,
    "replace_section": _replace_rules,
    "vocal_removal": _vocal_removal_rules,
}


def artifacts_for(kind_name: str, report: UpstreamReport) -> tuple[Artifact, ...] | None:
    """The files a successful report yields, or None if the report lacks a needed URL.

    Names are made for people (:func:`_artifacts`), never from a URL, and are unique within
    the job even when two tracks share a title (``1-song.mp3``, ``2-song.mp3``; a repeat
    gets ``-2``): the store keys artifacts by name.
    """
    files = _artifacts(kind_name, report)
    if files is None:
        return None
    seen: dict[str, int] = {}
    unique: list[Artifact] = []
    for artifact in files:
        name = artifact.name
        count = seen.get(name, 0) + 1
        seen[name] = count
        if count > 1:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}-{count}{dot}{ext}"
            while name in seen:  # an upstream id that already looked like "<id>-2"
                count += 1
                name = f"{stem}-{count}{dot}{ext}"
            seen[name] = 1
        unique.append(replace(artifact, name=name) if name != artifact.name else artifact)
    return tuple(unique)


#: a media file's extension and media type, by result label (anything else: an mp3 stem)
_MEDIA_FILES: Mapping[str, tuple[str, str]] = {
    "video": ("mp4", "video"),
    "audio_wav": ("wav", "audio"),
}
#: file names people expect for a media file ("video.mp4", "vocals.mp3"), by result label
_MEDIA_NAMES: Mapping[str, str] = {"audio_wav": "audio", "vocal": "vocals"}
_SLUG_RUN = re.compile(r"[^a-z0-9]+")
SLUG_LENGTH = 40


def slug(text: str | None, fallback: str) -> str:
    """``text`` as a file-name part people can read: lower case ASCII letters and digits
    joined by "-", at most :data:`SLUG_LENGTH` characters (``fallback`` when nothing is left)."""
    folded = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    words = _SLUG_RUN.sub("-", folded.lower()).strip("-")
    return words[:SLUG_LENGTH].rstrip("-") or fallback


def _artifacts(kind_name: str, report: UpstreamReport) -> tuple[Artifact, ...] | None:
    """Names for people: ``<n>-<title slug>.mp3`` and ``.jpeg`` per track, ``video.mp4``,
    ``audio.wav``, ``vocals.mp3`` / ``instrumental.mp3`` / ``<stem>.mp3``. Safe by
    construction (a slug, or a label from a fixed alphabet, through safe_name); unique via
    :func:`artifacts_for`. The upstream ids stay in the job's result."""
    from orchestrator.names import safe_name

    kind = get_kind(kind_name)
    out: list[Artifact] = []
    if kind.family == "lyrics":
        # the upstream gives the texts themselves: each is stored as a file, fetched from a
        # data: URL the orchestrator makes (the downloader writes it, no network)
        if not report.task_id or not report.texts:
            return None
        for n, (title, text) in enumerate(report.texts, start=1):
            encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
            url = f"data:text/plain;charset=utf-8;base64,{encoded}"
            name = safe_name(f"{n}-{slug(title, 'lyrics')}", "txt")
            out.append(Artifact(name=name, url=url, media="text"))
        return tuple(out)
    if kind.family == "mp4":
        files = dict(report.files)
        if not files and report.video_url:
            files = {"video": report.video_url}
        if not report.task_id or not files or (kind.needs and kind.needs not in files):
            return None
        for label, url in files.items():
            ext, media = _MEDIA_FILES.get(label, ("mp3", "audio"))
            name = safe_name(slug(_MEDIA_NAMES.get(label, label), "file"), ext)
            out.append(Artifact(name=name, url=url, media=media))
        return tuple(out)
    if not report.tracks:
        return None
    for n, track in enumerate(report.tracks, start=1):
        if not track.audio_url:
            return None
        stem = f"{n}-{slug(track.title, 'track')}"
        out.append(Artifact(name=safe_name(stem, "mp3"), url=track.audio_url, media="audio"))
        if track.image_url:
            out.append(Artifact(name=safe_name(stem, "jpeg"), url=track.image_url, media="image"))
    return tuple(out)
