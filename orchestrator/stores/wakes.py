"""Wake-ups between daemons on one PostgreSQL: ``LISTEN/NOTIFY``.

A daemon that cannot act on a wake-up itself (a callback for a job another daemon holds the
lease of) publishes it; every other daemon on the database hears it and acts as if the
callback had reached it. The database stays the truth: a wake-up lost (a connection down,
a daemon restarting) costs the time until the job's due time comes round at a tick, never
the job. SQLite has no such channel (one host: there is nothing to tell).

* The channel is the schema's (``orchestrator_wake_<digest of current_schema()>``), so
  daemons on other schemas of the same database never hear each other.
* A payload is ``<node> <what> <job id>``; a daemon ignores its own.
* Publishing uses its own autocommit connection (``pg_notify``), after the work's commit;
  listening holds one more connection, re-opened with backoff when it breaks.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from orchestrator.logs import get_logger

log = get_logger("orchestrator.wakes")

#: what a wake-up asks for
POLL: Final = "poll"
#: seconds between retries of a broken listening connection (doubling, up to the max)
RECONNECT_S: Final = 0.5
RECONNECT_MAX_S: Final = 10.0


def conninfo(url: str) -> str:
    """The libpq URI of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresWakes:
    """Publish and hear wake-ups among the daemons on one PostgreSQL schema."""

    def __init__(self, url: str, node: str, *, schema: str | None = None) -> None:
        info = conninfo(url)
        if schema:  # as the store's own connections (stores/postgres.py)
            info = make_conninfo(info, options=f"-c search_path={schema}")
        self._conninfo = info
        self.node = node
        self._channel: str | None = None
        self._send: psycopg.Connection[tuple[object, ...]] | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: wake-ups sent and heard (for metrics and tests)
        self.sent = 0
        self.heard = 0

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        if self._channel is None:
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = str(row[0]) if row else "public"
            self._channel = "orchestrator_wake_" + hashlib.sha256(schema.encode()).hexdigest()[:16]
        return conn

    @property
    def channel(self) -> str:
        if self._channel is None:
            self._connect().close()
        assert self._channel is not None
        return self._channel

    def publish(self, what: str, job_id: int) -> bool:
        """Tell the other daemons; False when it could not be sent (the tick will do)."""
        payload = f"{self.node} {what} {job_id}"
        with self._send_lock:
            try:
                if self._send is None or self._send.closed:
                    self._send = self._connect()
                self._send.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
            except psycopg.Error as exc:
                log.warning("wake_not_sent", job_id=job_id, error=str(exc).strip())
                if self._send is not None:
                    self._send.close()
                self._send = None
                return False
        self.sent += 1
        return True

    def listen(self, on_wake: Callable[[str, int], None]) -> None:
        """Hear the others' wake-ups on a thread of its own until :meth:`close`."""
        self._thread = threading.Thread(
            target=self._listen, args=(on_wake,), name="wakes", daemon=True
        )
        self._thread.start()

    def _listen(self, on_wake: Callable[[str, int], None]) -> None:
        pause = RECONNECT_S
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    log.info("wakes_listening", channel=self.channel)
                    pause = RECONNECT_S
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._heard(note.payload, on_wake)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("wakes_connection_lost", error=str(exc).strip(), retry_s=pause)
                self._stop.wait(pause)
                pause = min(RECONNECT_MAX_S, pause * 2)

    def _heard(self, payload: str, on_wake: Callable[[str, int], None]) -> None:
        node, _, rest = payload.partition(" ")
        what, _, job = rest.partition(" ")
        if node == self.node or not job.isdigit():
            return
        self.heard += 1
        try:
            on_wake(what, int(job))
        except Exception:
            log.exception("wake_failed", what=what, job_id=job)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._send_lock:
            if self._send is not None:
                self._send.close()
                self._send = None
