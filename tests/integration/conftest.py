"""Fixtures shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.stores.sql import SQLStore


class SharedDatabase:
    """One database several "daemons" open, each with a store of its own."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url, self.schema = url, schema
        self.opened: list[SQLStore] = []

    def open(self, n: int) -> list[SQLStore]:
        stores = [SQLStore(self.url, schema=self.schema) for _ in range(n)]
        self.opened += stores
        return stores

    @property
    def config_url(self) -> str:
        """The URL a config file gives (PostgreSQL: the schema in the search path)."""
        if self.schema is None:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"

    def engine(self) -> sa.Engine:
        """An engine on the same tables, bypassing the store."""
        return sa.create_engine(self.config_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedDatabase]:
    """A SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        db = SharedDatabase(f"sqlite:///{tmp_path / 'shared.db'}", None)
    else:
        db = SharedDatabase(request.getfixturevalue("pg_url"), f"shared_{uuid.uuid4().hex[:12]}")
    yield db
    for store in db.opened:
        store.close()
    if db.schema is not None:
        engine = sa.create_engine(db.url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE'))
        engine.dispose()
