"""PostgreSQL engine setup and its dialect-specific statements.

Connections go through psycopg 3 with ``pool_pre_ping`` (a restarted server costs one failed
ping, not a failed write). ``schema`` isolates a set of tables through ``search_path`` (the
tests give each run its own). A read transaction is REPEATABLE READ, so its statements see
one snapshot. Claims add ``FOR UPDATE SKIP LOCKED`` (in the store's claim).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Engine, Table, create_engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.sql.dml import Insert


def create_postgres_engine(url: URL, *, schema: str | None) -> tuple[Engine, dict[str, Any]]:
    """The engine, and the execution options of a read-only transaction."""
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["options"] = f"-c search_path={schema}"
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    return engine, {"isolation_level": "REPEATABLE READ"}


def upsert(table: Table, keys: Sequence[Column[Any]], columns: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET columns = EXCLUDED.columns."""
    statement = postgresql.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in columns}
    )
