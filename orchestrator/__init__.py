"""orchestrator: a polling-first job orchestrator with callback acceleration."""

from __future__ import annotations

__version__ = "0.1.0"
