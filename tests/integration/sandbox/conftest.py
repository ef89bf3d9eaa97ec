"""Fixtures for the sandbox over real HTTP on 127.0.0.1: servers, clients, a receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.sandbox import SandboxConfig, SandboxServer
from orchestrator.sandbox.testing import CallbackReceiver, SandboxClient

#: fast lifecycles: generate completes in 30-90 ms, a music video in 20-60 ms
FAST = 0.0005

SandboxFactory = Callable[..., SandboxServer]
ClientFactory = Callable[..., SandboxClient]


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as receiver:
        yield receiver


@pytest.fixture
def start_sandbox() -> Iterator[SandboxFactory]:
    """``start_sandbox(**config)``: a started sandbox on a free port, stopped afterwards."""
    servers: list[SandboxServer] = []

    def factory(**overrides: Any) -> SandboxServer:
        settings: dict[str, Any] = {"port": 0, "time_scale": FAST}
        settings.update(overrides)
        server = SandboxServer(SandboxConfig(**settings))
        server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def make_api() -> Iterator[ClientFactory]:
    """``make_api(sandbox, key=...)``: a client for that sandbox, closed afterwards."""
    clients: list[SandboxClient] = []

    def factory(sandbox: SandboxServer, key: str = "sandbox-key", **kw: Any) -> SandboxClient:
        client = SandboxClient(sandbox.url, key, **kw)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture(params=["sunoapi", "kie"])
def profile(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def sandbox(start_sandbox: SandboxFactory, profile: str) -> SandboxServer:
    return start_sandbox(profile=profile)


@pytest.fixture
def api(make_api: ClientFactory, sandbox: SandboxServer) -> SandboxClient:
    return make_api(sandbox)
