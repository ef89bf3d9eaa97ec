"""``orchestrator db backup PATH``: a consistent copy of a live SQLite database through
SQLite's online backup API (the daemon may keep writing meanwhile)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.exceptions import ConfigError, UsageError


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
