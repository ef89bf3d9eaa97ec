"""Serve a WSGI app with waitress in a background thread, stoppable.

waitress is a production WSGI server that embeds cleanly in a process that also runs the
scheduler (gunicorn and granian want to own the process); see docs/performance.md.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from waitress.server import create_server


class BackgroundServer:
    def __init__(
        self, app: Any, host: str, port: int, *, threads: int = 8, keep_proxy_headers: bool = False
    ) -> None:
        # waitress strips X-Forwarded-For & co. by default. The app reads them itself, and
        # believes them only from the configured [callbacks] trusted_proxies
        # (orchestrator/web/callback_auth.py), so they are kept only when that is set.
        self._server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="orchestrator",
            clear_untrusted_proxy_headers=not keep_proxy_headers,
            channel_timeout=30,
        )
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # closed under our feet during stop()
            self._server.run()

    def stop(self, timeout_s: float = 5.0) -> None:
        server = self._server
        server.task_dispatcher.shutdown(timeout=timeout_s)
        server.asyncore.close_all(server._map)
        self._thread.join(timeout_s)
