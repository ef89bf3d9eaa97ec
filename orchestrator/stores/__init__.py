"""Stores: where jobs, their event logs, artifacts and callback tokens live.

:class:`orchestrator.stores.base.Store` is the interface, shaped by use cases; one SQL
implementation serves SQLite and PostgreSQL (:mod:`orchestrator.stores.sql`).
"""

from __future__ import annotations

from orchestrator.stores.base import Claim, Store

__all__ = ["Claim", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Open (and create or upgrade the schema of) the store at ``url``."""
    from orchestrator.stores.sql import SQLStore

    return SQLStore(url)
