"""Where each kind is submitted and polled on the Suno-style API (both profiles share paths)."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from orchestrator.exceptions import InvalidParams


@dataclass(frozen=True)
class Endpoints:
    submit: str  #: POST, JSON body
    detail: str  #: GET ?taskId=


ENDPOINTS = MappingProxyType(
    {
        "generate_music": Endpoints("/api/v1/generate", "/api/v1/generate/record-info"),
        "replace_section": Endpoints(
            "/api/v1/generate/replace-section", "/api/v1/generate/record-info"
        ),
        "extend": Endpoints("/api/v1/generate/extend", "/api/v1/generate/record-info"),
        "music_video": Endpoints("/api/v1/mp4/generate", "/api/v1/mp4/record-info"),
        "wav": Endpoints("/api/v1/wav/generate", "/api/v1/wav/record-info"),
        "lyrics": Endpoints("/api/v1/lyrics", "/api/v1/lyrics/record-info"),
        "vocal_removal": Endpoints(
            "/api/v1/vocal-removal/generate", "/api/v1/vocal-removal/record-info"
        ),
    }
)


#: GET: the account's credit balance
CREDIT_PATH = "/api/v1/generate/credit"


def endpoints_for(kind: str) -> Endpoints:
    try:
        return ENDPOINTS[kind]
    except KeyError:
        raise InvalidParams(f"the provider has no endpoint for kind {kind!r}") from None
