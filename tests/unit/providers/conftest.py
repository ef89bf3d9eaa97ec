"""Fixtures for provider unit tests: a SunoProvider over ``httpx.MockTransport``, no network."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from orchestrator.providers import SunoProvider, get_profile

#: a fake API key; tests assert it never shows up in messages or reprs
API_KEY = "sk-test-7f3c9a1e5b2d4f60SECRET"
BASE_URL = "https://upstream.test"

Handler = Callable[[httpx.Request], httpx.Response]
ProviderFactory = Callable[[str, Handler], SunoProvider]


@pytest.fixture
def make() -> Iterator[ProviderFactory]:
    """``make(profile_name, handler)``: a provider whose client answers with ``handler``."""
    clients: list[httpx.Client] = []

    def factory(profile_name: str, handler: Handler) -> SunoProvider:
        client = httpx.Client(transport=httpx.MockTransport(handler))
        clients.append(client)
        return SunoProvider(client, get_profile(profile_name), base_url=BASE_URL, api_key=API_KEY)

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def api_key() -> str:
    """The key every provider made by ``make`` holds."""
    return API_KEY
