"""Stores: where jobs, their event logs, artifacts and callback tokens live.

:class:`orchestrator.stores.base.Store` is the interface, shaped by use cases; one SQL
implementation serves SQLite and PostgreSQL (:mod:`orchestrator.stores.sql`).
"""

from __future__ import annotations

from orchestrator.exceptions import ConfigError, StoreError
from orchestrator.stores.base import Claim, Store

__all__ = ["Claim", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Open (and create or upgrade the schema of) the store at ``[storage] url``.

    A database that cannot be opened (a file in the way of its directory, a path under
    /proc, a server that refuses) is a :class:`ConfigError` naming the option: one line for
    the user, never a traceback.
    """
    from orchestrator.stores.sql import SQLStore

    try:
        return SQLStore(url)
    except StoreError as exc:
        raise ConfigError(f"[storage] url: {exc}") from exc
