from __future__ import annotations

from tests.acceptance.harness import deploy, start_sandbox

__all__ = ["deploy", "start_sandbox"]
