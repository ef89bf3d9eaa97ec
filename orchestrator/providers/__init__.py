"""Providers: adapters to an upstream API family, behind :class:`Provider`."""

from __future__ import annotations

import httpx

from orchestrator.providers.base import Provider
from orchestrator.providers.profiles import Profile, get_profile
from orchestrator.providers.suno import SunoProvider

__all__ = ["Profile", "Provider", "SunoProvider", "get_profile", "make_provider"]


def make_provider(
    profile_name: str, client: httpx.Client, *, base_url: str, api_key: str
) -> Provider:
    """The provider for ``profile_name`` ("sunoapi" | "kie"); :class:`ValueError` if unknown.

    An empty ``base_url`` means the profile's default. The per-request timeout follows the
    client's read timeout (30 s when the client has none).
    """
    profile = get_profile(profile_name)
    read = client.timeout.read
    timeout_s = read if read is not None and read > 0 else 30.0
    return SunoProvider(client, profile, base_url=base_url, api_key=api_key, timeout_s=timeout_s)
