"""Who may use the job API, /metrics and the status page: the two questions every guard asks.

A reverse proxy on this host makes every caller look local: a forwarded request is never a
local one, whatever ``trusted_proxies`` says (that setting only decides whose callbacks'
source address to believe).
"""

from __future__ import annotations

import hmac
from typing import Final

from flask import request

from orchestrator.networks import is_loopback

FORWARDING_HEADERS: Final = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def bearer_matches(token: str) -> bool:
    """The request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def local_caller() -> bool:
    """The caller is on this host and no proxy forwarded the request."""
    forwarded = any(request.headers.get(h) for h in FORWARDING_HEADERS)
    return is_loopback(request.remote_addr) and not forwarded
