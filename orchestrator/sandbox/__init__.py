"""The sandbox: a faithful local imitation of the upstream music API, with faults on demand.

::

    from orchestrator.sandbox import SandboxConfig, SandboxServer, parse_faults

    with SandboxServer(SandboxConfig(port=0, time_scale=0.01,
                                     faults=parse_faults("drop=0.3"))) as sandbox:
        ...  # talk to sandbox.url; count calls in sandbox.ledger()

docs/sandbox.md describes the endpoints, profiles, failure markers, faults and the ledger.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.sandbox.app import create_app
    from orchestrator.sandbox.config import SandboxConfig
    from orchestrator.sandbox.faults import FaultSpec, parse_faults
    from orchestrator.sandbox.server import SandboxServer

__all__ = ["FaultSpec", "SandboxConfig", "SandboxServer", "create_app", "parse_faults"]

# Imported on first use: the CLI builds the `sandbox` subcommand's parser on every run, and
# the app (Flask, httpx, the engine) is a quarter of a second it should not pay for that.
_HOMES = {
    "create_app": "orchestrator.sandbox.app",
    "SandboxConfig": "orchestrator.sandbox.config",
    "FaultSpec": "orchestrator.sandbox.faults",
    "parse_faults": "orchestrator.sandbox.faults",
    "SandboxServer": "orchestrator.sandbox.server",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
