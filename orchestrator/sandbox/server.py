"""Serve the sandbox app with waitress on a background thread; start and stop fast."""

from __future__ import annotations

import contextlib
import logging
import threading
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from orchestrator.sandbox.app import create_app, get_engine
from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.engine import Engine
from orchestrator.sandbox.faults import FaultSpec

LOOP_TIMEOUT_S = 0.05
log = logging.getLogger(__name__)


class SandboxServer:
    """The sandbox on a real socket::

    with SandboxServer(SandboxConfig(port=0, time_scale=0.01)) as sandbox:
        httpx.get(f"{sandbox.url}/api/v1/generate/credit", headers=...)
        sandbox.ledger()
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._server: Any = None
        self._engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._url: str | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Bind (port 0 picks a free port) and serve on a background thread."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already started")
        app = create_app(self.config)
        engine = get_engine(app)
        try:
            server: Any = create_server(
                app,
                host=self.config.host,
                port=self.config.port,
                threads=self.config.threads,
                ident="sandbox",
                connection_limit=1000,
                channel_timeout=60,
                asyncore_use_poll=True,
                clear_untrusted_proxy_headers=False,
            )
        except BaseException:
            engine.close()
            raise
        port = getattr(server, "effective_port", None)
        if port is None:  # several listening sockets (a host name with IPv4 and IPv6)
            port = server.effective_listen[0][1]
        self._url = f"http://{engine.local_host}:{port}"
        if self.config.public_url is None:
            engine.base_url = self._url
        self._server = server
        self._engine = engine
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="sandbox-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        server = self._server
        server_map = server.map if hasattr(server, "effective_listen") else server._map
        while not self._stop.is_set():
            try:
                wasyncore.loop(timeout=LOOP_TIMEOUT_S, map=server_map, use_poll=True, count=1)
            except Exception:  # a broken channel must not kill the server loop
                log.exception("sandbox_loop_error")

    def stop(self) -> None:
        """Stop serving, drop scheduled callbacks, close every socket. Idempotent."""
        thread, server, engine = self._thread, self._server, self._engine
        if thread is None:
            return
        self._stop.set()
        with contextlib.suppress(Exception):
            server.pull_trigger()  # wake the loop now rather than at its next timeout
        if engine is not None:
            engine.stopping.set()  # wakes slow answers
        thread.join(timeout=5)
        if engine is not None:
            engine.close()
        if server is not None:
            server_map = server.map if hasattr(server, "effective_listen") else server._map
            for channel in list(server_map.values()):
                with contextlib.suppress(Exception):
                    channel.close()
            with contextlib.suppress(Exception):
                server.close()
            server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self._thread = None
        self._server = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- access -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (only after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("the sandbox server is not started")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the sandbox server is not started")
        return self._engine

    def ledger(self) -> dict[str, Any]:
        """The same JSON as ``GET /_sandbox/ledger``."""
        return self.engine.ledger_snapshot()

    def set_faults(self, faults: FaultSpec) -> None:
        """Change the faults from now on (tasks already submitted keep their plan)."""
        self.engine.set_faults(faults)

    def reset(self) -> None:
        """Forget every task and ledger entry (``POST /_sandbox/reset``)."""
        self.engine.reset()
