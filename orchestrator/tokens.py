"""Per-attempt callback tokens: made by the submitter, looked up by the callback endpoint.

A token is 256 random bits, URL-safe; only its SHA-256 is stored (with the attempt it was
issued for), so the database never holds a live token (docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets

#: the path every callback URL starts with, followed by the token
CALLBACK_PREFIX = "/callbacks/"


def new_token() -> tuple[str, str]:
    """A fresh callback token and the hash the store keeps."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def callback_url(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PREFIX + token
