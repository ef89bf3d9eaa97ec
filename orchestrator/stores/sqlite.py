"""SQLite engine setup: WAL, ``synchronous=FULL``, a busy timeout, and ``BEGIN IMMEDIATE``.

Durability (docs/durability.md): WAL with ``synchronous=FULL`` fsyncs the WAL at every
commit, so a commit that returned survives a process kill, an OS crash and a power cut.
``NORMAL`` would fsync only at checkpoints and may lose the last commits on power loss:
that would break "a callback gets its 2xx only after its raw body is committed". FULL costs
~6x the commit rate of NORMAL and still gives ~9,000 commits/s (PERF_NOTES.md), far above
what the daemon needs. The WAL is checkpointed (PASSIVE) every ``WAL_AUTOCHECKPOINT_PAGES``.

Locking: the ``sqlite3`` driver's default "deferred" transactions start as readers and
upgrade to a write lock at their first write. When two connections do that at once, SQLite
cannot wait its way out (the reader holding a snapshot would have to give it up), so it
fails at once with "database is locked", *regardless of busy_timeout*. Following the
SQLAlchemy recipe ("Enabling Non-Legacy SQLite Transactional Modes"), we set the DBAPI
connection's ``isolation_level = None`` in the pool's "connect" event (the driver then never
emits BEGIN itself) and emit our own BEGIN in the engine's "begin" event:

* ``BEGIN IMMEDIATE`` for every transaction by default: the write lock is taken up front,
  and a competing writer (thread or process) *waits* for it, up to ``busy_timeout``;
* ``BEGIN DEFERRED`` only on connections marked with the ``READ_ONLY`` execution option, which
  the store uses for transactions that never write; in WAL mode readers never block writers
  nor each other, and never need a lock upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.dml import Insert

#: ``PRAGMA synchronous``: FULL fsyncs the WAL at every commit (docs/durability.md).
SYNCHRONOUS = "FULL"
#: ``PRAGMA wal_autocheckpoint``: pages of WAL after which a commit checkpoints (PASSIVE).
WAL_AUTOCHECKPOINT_PAGES = 1000


class SQLiteOpenError(OSError):
    """The SQLite file's directory cannot be created (the store reports it as StoreError)."""


#: Execution option: this connection's transactions only read (``BEGIN DEFERRED``).
READ_ONLY = "orchestrator_read_only"


def is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def create_sqlite_engine(url: str | URL, *, busy_timeout_s: float) -> Engine:
    """An engine for a SQLite file (its parent directory is created if missing)."""
    url = make_url(url)
    busy_ms = max(0, int(busy_timeout_s * 1000))
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": busy_timeout_s, "check_same_thread": False},
    }
    memory = is_memory(url)
    if memory:
        # One shared connection, or every connection would see its own empty database.
        # Meant for single-threaded tests and demos.
        kwargs["poolclass"] = StaticPool
    else:
        database = url.database or ""
        if not database.startswith("file:"):
            parent = Path(database).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SQLiteOpenError(
                    f"cannot create the directory {str(parent)!r} for the SQLite file: "
                    f"{exc.strerror or exc}"
                ) from exc
        # Threads (poller, downloader, callbacks) each hold a connection briefly.
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # the driver must not emit BEGIN itself: _on_begin does
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so that the journal-mode switch below waits for a lock too
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on disk before it returns (docs/durability.md: a callback's
            # 2xx promises its body is committed); ~9,000 commits/s, far above our need
            cursor.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def upsert(table: Table, keys: Sequence[Column[Any]], columns: Sequence[str]) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET columns = excluded.columns."""
    statement = sqlite.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in columns}
    )
