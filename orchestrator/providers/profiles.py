"""Provider profiles: one adapter, two resellers, two tables of envelope codes.

sunoapi.org and kie.ai expose the same paths and payloads but give the same code numbers
different meanings (429 is "insufficient credits" on one and "rate limited" on the other).
A :class:`Profile` holds everything that differs: the default base URL, the envelope code
table (code -> :class:`Outcome`), a human reason per code, and whether a browser-like
``User-Agent`` is needed to get past the CDN.

Codes missing from a table follow :meth:`Profile.outcome`'s fallback: 2xx success,
408 and 5xx retryable, anything else final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

#: sent to kie.ai, whose CDN refuses requests that do not look like a browser
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)


class ProfileName(StrEnum):
    """The resellers of the API this adapter speaks to."""

    SUNOAPI = "sunoapi"
    KIE = "kie"


class Outcome(StrEnum):
    """What an envelope ``code`` means for the request that got it."""

    SUCCESS = "success"  #: accepted / answered
    RETRYABLE = "retryable"  #: nothing was created; try again later (maintenance, 5xx)
    RATE_LIMITED = "rate_limited"  #: slow down, then try again
    FINAL = "final"  #: retrying the same request cannot help (auth, validation)
    #: the account cannot pay: nothing was created; the same request works once topped up
    NO_CREDITS = "no_credits"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between the resellers of the API."""

    name: str
    default_base_url: str
    #: envelope code -> outcome; codes not listed use the fallback in :meth:`outcome`
    codes: Mapping[int, Outcome] = field(hash=False)
    #: envelope code -> what the provider means by it (for messages)
    reasons: Mapping[int, str] = field(hash=False)
    #: the CDN in front of the provider refuses non-browser User-Agents
    browser_user_agent: bool = False
    #: envelope codes that mean the API key is refused
    auth_codes: frozenset[int] = frozenset({401})

    def outcome(self, code: int) -> Outcome:
        """The outcome of an envelope (or bare HTTP) ``code``."""
        known = self.codes.get(code)
        if known is not None:
            return known
        if code == 200:
            return Outcome.SUCCESS
        if code == 408 or 500 <= code <= 599:
            return Outcome.RETRYABLE
        return Outcome.FINAL

    def reason(self, code: int) -> str:
        """A short human reason for ``code``."""
        known = self.reasons.get(code)
        if known is not None:
            return known
        outcome = self.outcome(code)
        return {
            Outcome.SUCCESS: "success",
            Outcome.RETRYABLE: "temporary upstream error",
            Outcome.RATE_LIMITED: "rate limited",
            Outcome.FINAL: "request refused",
        }[outcome]

    def user_agent(self) -> str | None:
        """The User-Agent to send, or None to keep the client's own."""
        return BROWSER_USER_AGENT if self.browser_user_agent else None


_S, _R, _L, _F = Outcome.SUCCESS, Outcome.RETRYABLE, Outcome.RATE_LIMITED, Outcome.FINAL
_C = Outcome.NO_CREDITS

SUNOAPI = Profile(
    name="sunoapi",
    default_base_url="https://api.sunoapi.org",
    codes=MappingProxyType(
        {
            200: _S,
            400: _F,
            401: _F,
            402: _C,
            405: _L,
            409: _F,
            413: _F,
            422: _F,
            429: _C,
            430: _L,
            455: _R,
            500: _R,
            501: _F,
            505: _F,
        }
    ),
    reasons=MappingProxyType(
        {
            200: "success",
            400: "invalid parameters",
            401: "unauthorized (API key refused)",
            402: "insufficient credits",
            405: "rate limit exceeded",
            409: "record already exists",
            413: "prompt or style too long",
            422: "validation error",
            429: "insufficient credits",
            430: "call frequency too high",
            455: "system maintenance",
            500: "server error",
            501: "generation failed",
            505: "feature disabled",
        }
    ),
    browser_user_agent=False,
)

KIE = Profile(
    name="kie",
    default_base_url="https://api.kie.ai",
    codes=MappingProxyType(
        {
            200: _S,
            400: _F,
            401: _F,
            402: _C,
            409: _F,
            413: _F,
            422: _F,
            429: _L,
            455: _R,
            500: _R,
            501: _F,
            505: _F,
        }
    ),
    reasons=MappingProxyType(
        {
            200: "success",
            400: "validation error",
            401: "unauthorized (API key refused)",
            402: "insufficient credits",
            409: "conflict (record already exists)",
            413: "content too long",
            422: "validation error",
            429: "rate limited",
            455: "system maintenance",
            500: "server error",
            501: "generation failed",
            505: "feature disabled",
        }
    ),
    browser_user_agent=True,
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (SUNOAPI, KIE)})


def get_profile(name: str) -> Profile:
    """The profile called ``name``; :class:`ValueError` for unknown names."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown provider profile {name!r} (known: {known})") from None
