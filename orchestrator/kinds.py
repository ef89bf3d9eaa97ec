"""The job kinds the orchestrator knows: required params, and the files each yields.

Where each kind is sent is the provider's business (:mod:`orchestrator.providers.endpoints`).

Pure data and pure functions: no I/O. Params use the upstream's own field names; the
orchestrator fills ``callBackUrl`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.domain import Artifact
from orchestrator.exceptions import InvalidParams
from orchestrator.jsonvalues import json_problem
from orchestrator.observations import UpstreamReport


@dataclass(frozen=True)
class Kind:
    name: str
    #: "music" (record-info with status + sunoData tracks) or "mp4" (successFlag + videoUrl)
    family: str
    required: tuple[str, ...]
    #: value checks: field -> (type, max length or None)
    types: Mapping[str, tuple[type | tuple[type, ...], int | None]]


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
                "model": (str, 20),
                "prompt": (str, 5000),
                "style": (str, 1000),
                "title": (str, 100),
                "negativeTags": (str, 1000),
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
                "taskId": (str, 128),
                "audioId": (str, 128),
                "prompt": (str, 5000),
                "tags": (str, 1000),
                "title": (str, 100),
                "infillStartS": ((int, float), None),
                "infillEndS": ((int, float), None),
                "fullLyrics": (str, 5000),
                "negativeTags": (str, 1000),
            },
        ),
        Kind(
            name="music_video",
            family="mp4",
            required=("taskId", "audioId"),
            types={
                "taskId": (str, 128),
                "audioId": (str, 128),
                "author": (str, 50),
                "domainName": (str, 50),
            },
        ),
    )
}


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
    missing = [name for name in kind.required if name not in params]
    if missing:
        raise InvalidParams(f"{kind.name} needs {', '.join(missing)}")
    for name, (typ, max_len) in kind.types.items():
        if name not in params or name in unresolved:
            continue
        value = params[name]
        # bool is an int subclass: a number field must not take true/false
        if (typ is not bool and isinstance(value, bool)) or not isinstance(value, typ):
            want = typ.__name__ if isinstance(typ, type) else "number"
            raise InvalidParams(f"{name} must be a {want}, got {value!r}")
        if max_len is not None and isinstance(value, str) and len(value) > max_len:
            raise InvalidParams(f"{name} is {len(value)} characters; at most {max_len}")
    if unresolved & {"customMode", "prompt", "infillStartS", "infillEndS", "fullLyrics"}:
        return  # the rules between fields wait for the resolved values
    if kind.name == "generate_music" and params.get("customMode") is False:
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidParams("generate_music without customMode needs a prompt")
        if len(prompt) > 500:
            raise InvalidParams("prompt is limited to 500 characters without customMode")
    if kind.name == "replace_section":
        start, end = float(params["infillStartS"]), float(params["infillEndS"])
        if start < 0:
            raise InvalidParams(f"infillStartS must not be negative, got {start:g}")
        if not start < end:
            raise InvalidParams("infillStartS must be less than infillEndS")
        if not 6 <= end - start <= 60:
            raise InvalidParams("the replaced window (infillEndS - infillStartS) must be 6..60 s")
        for name in ("prompt", "fullLyrics"):
            if not str(params[name]).strip():
                raise InvalidParams(f"replace_section needs a non-empty {name}")


def artifacts_for(kind_name: str, report: UpstreamReport) -> tuple[Artifact, ...] | None:
    """The files a successful report yields, or None if the report lacks a needed URL.

    Names come only from sanitised upstream ids (never from URL or callback text), and are
    unique within the job even when the upstream repeats an id (``<id>-2.mp3``): the store
    keys artifacts by name, and two tracks under one id are still two files.
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


def _artifacts(kind_name: str, report: UpstreamReport) -> tuple[Artifact, ...] | None:
    from orchestrator.names import safe_name

    kind = get_kind(kind_name)
    out: list[Artifact] = []
    if kind.family == "mp4":
        if not report.video_url or not report.task_id:
            return None
        out.append(
            Artifact(name=safe_name(report.task_id, "mp4"), url=report.video_url, media="video")
        )
        return tuple(out)
    if not report.tracks:
        return None
    for track in report.tracks:
        if not track.audio_url:
            return None
        out.append(Artifact(name=safe_name(track.id, "mp3"), url=track.audio_url, media="audio"))
        if track.image_url:
            out.append(
                Artifact(name=safe_name(track.id, "jpeg"), url=track.image_url, media="image")
            )
    return tuple(out)
