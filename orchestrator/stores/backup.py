"""``orchestrator db backup PATH`` and ``db current``: a consistent copy of a live SQLite
database through SQLite's online backup API (the daemon may keep writing meanwhile), and the
schema version a database is at."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from orchestrator.exceptions import ConfigError, UsageError
from orchestrator.stores.tables import SCHEMA_META


def _sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise UsageError(
            "db backup copies a SQLite database; for PostgreSQL use pg_dump (docs/deploy.md)"
        )
    return Path(parsed.database)


def backup(url: str, dest: Path) -> Path:
    """Copy the database at ``url`` to ``dest`` (which must not exist), consistently."""
    source = _sqlite_path(url)
    if not source.is_file():
        raise ConfigError(f"[storage] url: no database at {source}")
    if dest.exists():
        raise UsageError(f"{dest} exists; give a new path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out, pages=1024)  # in steps: the daemon's writers are not held up
        finally:
            out.close()
    finally:
        src.close()
    return dest


def schema_version(url: str) -> int | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(SCHEMA_META.c.version).where(SCHEMA_META.c.id == 1))
    finally:
        engine.dispose()
