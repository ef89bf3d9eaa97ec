"""The embedded waitress server passes X-Forwarded-For to the app only when trusted proxies
are configured (the app then believes it only from those proxies)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestrator.web.server import BackgroundServer


def _echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("HTTP_X_FORWARDED_FOR", "-").encode()]


@pytest.mark.parametrize(("keep", "seen"), [(False, "-"), (True, "203.0.113.7")])
def test_forwarded_for_reaches_the_app_only_when_asked(keep: bool, seen: str) -> None:
    server = BackgroundServer(_echo, "127.0.0.1", 0, threads=2, keep_proxy_headers=keep)
    server.start()
    try:
        with httpx.Client(timeout=5) as client:
            answer = client.get(
                f"http://127.0.0.1:{server.port}/", headers={"X-Forwarded-For": "203.0.113.7"}
            )
        assert answer.text == seen
    finally:
        server.stop()
