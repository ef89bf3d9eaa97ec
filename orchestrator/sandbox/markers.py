"""Failures on demand: marker words in a request that make its task fail a known way.

Music family (generate, extend, replace section): any string field of the request (prompt,
style, title, tags, fullLyrics ...) may carry a marker. Music video: the ``author`` or
``domainName`` field. WAV and vocal removal have no free-text field: only the ``fail`` fault.

===================  =========================  ==========  =================================
marker               status                     code        kinds
===================  =========================  ==========  =================================
``SENSITIVE_WORD``   SENSITIVE_WORD_ERROR       400         music family
``FAIL_CREATE``      CREATE_TASK_FAILED         500         all with a text field
``FAIL_400``         GENERATE_AUDIO_FAILED /    400         music family, music video
                     GENERATE_MP4_FAILED
``FAIL_408``         GENERATE_AUDIO_FAILED      408         music family
``FAIL_413``         GENERATE_AUDIO_FAILED      413         music family
``FAIL_451``         GENERATE_MP4_FAILED        451         music video
``FAIL_500``         (the kind's failure)       500         music family, music video
``FAIL_501``         (the kind's failure)       501         music family, music video
``FAIL_531``         GENERATE_AUDIO_FAILED      531         music family (credits refunded)
===================  =========================  ==========  =================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orchestrator.sandbox.kinds import MUSIC_FAMILY, Kind

SENSITIVE_MARKER = "SENSITIVE_WORD"
CREATE_MARKER = "FAIL_CREATE"
_CODE_MARKER = re.compile(r"FAIL_(\d{3})")

MUSIC_MARKER_CODES = frozenset({400, 408, 413, 500, 501, 531})
VIDEO_MARKER_CODES = frozenset({400, 451, 500, 501})
LYRICS_MARKER_CODES = frozenset({400, 500, 501})
#: kinds whose prompt may carry SENSITIVE_WORD
_SENSITIVE_KINDS = MUSIC_FAMILY | {"lyrics"}

#: the status a generation failure has, per kind
FAILED_STATUS: dict[str, str] = {
    "generate_music": "GENERATE_AUDIO_FAILED",
    "extend": "GENERATE_AUDIO_FAILED",
    "replace_section": "GENERATE_AUDIO_FAILED",
    "music_video": "GENERATE_MP4_FAILED",
    "wav": "GENERATE_WAV_FAILED",
    "vocal_removal": "GENERATE_AUDIO_FAILED",
    "lyrics": "GENERATE_LYRICS_FAILED",
}

FAILURE_MESSAGES: dict[int, str] = {
    400: "Lyrics contain copyrighted material or the parameters are invalid.",
    408: "Generation timed out.",
    413: "The generated audio matches an existing work.",
    451: "Unable to download the source audio file.",
    500: "Internal error, please try again later.",
    501: "Audio generation failed.",
    531: "Generation failed, your credits have been refunded. Please try again.",
}


@dataclass(frozen=True)
class Failure:
    """How a task ends when it does not succeed."""

    status: str
    code: int
    message: str
    #: the submit's credits come back when the failure becomes visible (531 only)
    refund: bool = False
    #: the failure is found at once (sensitive words, task creation), before any progress
    immediate: bool = False


def failure_for_code(kind: Kind, code: int) -> Failure:
    return Failure(
        status=FAILED_STATUS[kind],
        code=code,
        message=FAILURE_MESSAGES.get(code, "Generation failed."),
        refund=code == 531,
    )


def _marker_texts(kind: Kind, params: dict[str, Any]) -> list[str]:
    if kind in MUSIC_FAMILY:
        return [value for value in params.values() if isinstance(value, str)]
    if kind == "lyrics":
        return [value for value in (params.get("prompt"),) if isinstance(value, str)]
    if kind == "music_video":
        return [
            value for key in ("author", "domainName") if isinstance(value := params.get(key), str)
        ]
    return []


def failure_from_markers(kind: Kind, params: dict[str, Any]) -> Failure | None:
    """The failure a request asks for with a marker word, or None."""
    texts = _marker_texts(kind, params)
    if not texts:
        return None
    if kind in _SENSITIVE_KINDS and any(SENSITIVE_MARKER in text for text in texts):
        return Failure(
            status="SENSITIVE_WORD_ERROR",
            code=400,
            message="The request contains sensitive words.",
            immediate=True,
        )
    if any(CREATE_MARKER in text for text in texts):
        return Failure(
            status="CREATE_TASK_FAILED",
            code=500,
            message="Failed to create the task.",
            immediate=True,
        )
    allowed = (
        MUSIC_MARKER_CODES
        if kind in MUSIC_FAMILY
        else LYRICS_MARKER_CODES
        if kind == "lyrics"
        else VIDEO_MARKER_CODES
    )
    for text in texts:
        for match in _CODE_MARKER.finditer(text):
            code = int(match.group(1))
            if code in allowed:
                return failure_for_code(kind, code)
    return None
