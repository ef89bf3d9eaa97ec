"""Opening a database: the URL checked, the dialect's engine made, one connection tried.

Shared by the store (:class:`orchestrator.stores.sql.SQLStore`) and the migrations
(:mod:`orchestrator.stores.migrate`), so both open a database the same way: SQLite with WAL,
``synchronous=FULL`` and ``BEGIN IMMEDIATE`` writes; PostgreSQL through psycopg 3, a
``schema`` (if given) through ``search_path``. SQLAlchemy's errors become
:class:`~orchestrator.exceptions.StoreError` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from orchestrator.exceptions import ConfigError, StoreError
from orchestrator.stores.postgres import create_postgres_engine
from orchestrator.stores.sqlite import READ_ONLY, SQLiteOpenError, create_sqlite_engine, is_memory

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Database:
    """An open engine, and what using it needs to know."""

    engine: Engine
    postgres: bool
    #: execution options of a read-only transaction (SQLite: BEGIN DEFERRED; PostgreSQL:
    #: REPEATABLE READ, one snapshot)
    read_options: dict[str, Any]


def describe(exc: SQLAlchemyError) -> str:
    """The driver's message, without the SQL and bound parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig if orig is not None else exc}".strip()


def open_database(
    url: str, *, busy_timeout_s: float, schema: str | None, create: bool = True
) -> Database:
    """The engine for ``url``, after one connection succeeded (so a database that cannot be
    opened at all says so, rather than "a write failed"). ``create=False``: a SQLite file
    that does not exist is an error, not a new empty database."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    postgres = backend == "postgresql"
    if schema is not None and (not postgres or not _IDENTIFIER.match(schema)):
        raise ValueError(f"schema must be a plain identifier on PostgreSQL, got {schema!r}")
    if not create and backend == "sqlite" and not is_memory(parsed):
        path = Path(parsed.database or "")
        if not path.is_file():
            raise ConfigError(f"[storage] url: no database at {path}")
    try:
        if backend == "sqlite":
            engine = create_sqlite_engine(parsed, busy_timeout_s=busy_timeout_s)
            read_options: dict[str, Any] = {READ_ONLY: True}
        elif postgres:
            engine, read_options = create_postgres_engine(parsed, schema=schema)
        else:
            raise ConfigError(
                f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}:"
                " use sqlite:///PATH or postgresql+psycopg://..."
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the database: {describe(exc)}") from exc
    except SQLiteOpenError as exc:
        raise StoreError(f"cannot open the database: {exc}") from exc
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the database: {describe(exc)}") from exc
    return Database(engine, postgres, read_options)
