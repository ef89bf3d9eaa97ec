"""Provider profiles: same paths and payloads, each provider's own error-code table.

The sandbox decides *why* it refuses something (a :data:`Reason`); the profile turns the
reason into the envelope ``code`` and ``msg`` that provider uses. The two tables differ where
the real providers differ: 429 is "insufficient credits" on sunoapi.org and "rate limited" on
kie.ai; sunoapi.org throttles with 430, kie.ai asks for credits with 402 and for a missing
field with 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal[
    "unauthorized",  # no or wrong bearer key
    "missing_field",  # a required field is absent or empty (callBackUrl included)
    "invalid",  # a field has a wrong type or value, an unknown taskId/audioId
    "too_long",  # prompt longer than the model allows
    "insufficient_credits",  # the balance does not cover the submit
    "rate_limited",  # more than the allowed submits per window, or the rate_limit fault
    "conflict",  # a second music video / WAV of the same audio
    "maintenance",  # 455, from the poll_error / submit_error faults
    "server_error",  # 500, from the poll_error / submit_error faults
    "not_found",  # record-info for a taskId the sandbox never issued
]

DAY_S = 86_400.0


@dataclass(frozen=True)
class Profile:
    """One provider's vocabulary."""

    name: str
    #: reason -> (envelope code, message); a message may contain ``{field}``
    codes: dict[str, tuple[int, str]]
    #: how long an artifact URL stays valid, real seconds, unless the config overrides it
    default_url_ttl_s: float
    #: whether callbacks may be HMAC-signed (``hmac_key``)
    signs_callbacks: bool

    def code_for(self, reason: Reason) -> int:
        return self.codes[reason][0]

    def message_for(self, reason: Reason, field: str = "") -> str:
        return self.codes[reason][1].format(field=field)


SUNOAPI = Profile(
    name="sunoapi",
    codes={
        "unauthorized": (401, "You do not have access permissions"),
        "missing_field": (400, "{field} cannot be empty"),
        "invalid": (400, "Invalid parameter: {field}"),
        "too_long": (413, "The {field} is too long"),
        "insufficient_credits": (429, "The current credits are insufficient. Please top up."),
        "rate_limited": (430, "Your call frequency is too high. Please try again later."),
        "conflict": (409, "{field} record already exists"),
        "maintenance": (455, "The system is currently undergoing maintenance"),
        "server_error": (500, "Server error, please try again later"),
        "not_found": (404, "record not found"),
    },
    default_url_ttl_s=14 * DAY_S,
    signs_callbacks=False,
)

KIE = Profile(
    name="kie",
    codes={
        "unauthorized": (401, "Unauthorized: invalid or missing API key"),
        "missing_field": (422, "Please enter {field}"),
        "invalid": (400, "Validation error: {field}"),
        "too_long": (400, "Validation error: {field} is too long"),
        "insufficient_credits": (402, "Insufficient credits"),
        "rate_limited": (429, "Rate limited: too many requests"),
        "conflict": (409, "Conflict: {field} record already exists"),
        "maintenance": (455, "Service is under maintenance"),
        "server_error": (500, "Internal server error"),
        "not_found": (404, "record not found"),
    },
    default_url_ttl_s=20 * 60.0,
    signs_callbacks=True,
)

PROFILES: dict[str, Profile] = {SUNOAPI.name: SUNOAPI, KIE.name: KIE}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})"
        ) from None
