"""The sandbox: a faithful local imitation of the upstream music API, with faults on demand.

::

    from orchestrator.sandbox import SandboxConfig, SandboxServer, parse_faults

    with SandboxServer(SandboxConfig(port=0, time_scale=0.01,
                                     faults=parse_faults("drop=0.3"))) as sandbox:
        ...  # talk to sandbox.url; count calls in sandbox.ledger()

docs/sandbox.md describes the endpoints, profiles, failure markers, faults and the ledger.
"""

from __future__ import annotations

from orchestrator.sandbox.app import create_app
from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.faults import FaultSpec, parse_faults
from orchestrator.sandbox.server import SandboxServer

__all__ = ["FaultSpec", "SandboxConfig", "SandboxServer", "create_app", "parse_faults"]
