"""Alembic's environment: migrations run on the connection :mod:`orchestrator.stores.migrate`
hands over, inside its transaction (with the schema lock held), never on one of their own."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from orchestrator.stores.tables import JOBS

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the migrations with `orchestrator db upgrade`, not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=JOBS.metadata,
    # SQLite alters most things by copying the table: batch mode does it
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
