"""The sandbox's HTTP face: a Flask app over an :class:`~orchestrator.sandbox.engine.Engine`.

Request-level faults are applied here: ``slow`` delays the answer, ``reset`` closes the
connection instead of answering (see :class:`ResetMiddleware`), ``http200`` is decided by the
engine (an error answer sent with status 200).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.engine import (
    CREDIT_PATH,
    DETAIL_PATHS,
    SUBMIT_PATHS,
    Answer,
    Engine,
)
from orchestrator.sandbox.faults import FaultSpec, RequestFaults, parse_faults

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

EXTENSION_KEY = "sandbox"
RESET_FLAG = "sandbox.reset"


def get_engine(app: Flask) -> Engine:
    """The engine behind an app made by :func:`create_app`."""
    engine = app.extensions[EXTENSION_KEY]
    assert isinstance(engine, Engine)
    return engine


def create_app(config: SandboxConfig, engine: Engine | None = None) -> Flask:
    """A Flask app imitating the upstream. Serve it with waitress (see server.py)."""
    engine = engine or Engine(config)
    app = Flask("orchestrator.sandbox")
    app.extensions[EXTENSION_KEY] = engine
    app.wsgi_app = ResetMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    def render(answer: Answer) -> Response:
        response = Response(
            json.dumps(answer.envelope, ensure_ascii=False, allow_nan=False),
            status=answer.http_status,
            mimetype="application/json",
        )
        for name, value in answer.headers.items():
            response.headers[name] = value
        return response

    def api_call(handler: Callable[[bool, RequestFaults], Answer]) -> Response:
        if config.require_browser_user_agent and "Mozilla/" not in (
            request.headers.get("User-Agent") or ""
        ):
            return Response("<html><body>Access denied</body></html>", 403, mimetype="text/html")
        request_faults = engine.roll_request_faults()
        key_ok = engine.check_key(request.headers.get("Authorization"))
        answer = handler(key_ok, request_faults)
        if request_faults.slow:
            engine.stopping.wait(engine.faults.slow_s)
        if request_faults.reset:
            request.environ[RESET_FLAG] = True
        return render(answer)

    def submit_view() -> Response:
        path = request.path
        kind = SUBMIT_PATHS[path]
        body: Any = request.get_json(force=True, silent=True)
        if body is None and request.data:
            body = request.get_data(as_text=True)

        def handler(key_ok: bool, request_faults: RequestFaults) -> Answer:
            return engine.submit(kind, path, body, key_ok, request_faults)

        return api_call(handler)

    def detail_view() -> Response:
        path = request.path
        task_id = request.args.get("taskId")

        def handler(key_ok: bool, request_faults: RequestFaults) -> Answer:
            return engine.detail(path, task_id, key_ok, request_faults)

        return api_call(handler)

    def credit_view() -> Response:
        return api_call(engine.credit)

    for path in SUBMIT_PATHS:
        app.add_url_rule(path, f"submit:{path}", submit_view, methods=["POST"])
    for path in DETAIL_PATHS:
        app.add_url_rule(path, f"detail:{path}", detail_view, methods=["GET"])
    app.add_url_rule(CREDIT_PATH, "credit", credit_view, methods=["GET"])

    def artifact_view(route: str, segment: str) -> Response:
        served = engine.artifact(
            route,
            segment,
            request.args.get("expires"),
            request.args.get("sig"),
            request.headers.get("Range"),
        )
        response = Response(served.body, status=served.status)
        for name, value in served.headers.items():
            response.headers[name] = value
        response.automatically_set_content_length = False
        return response

    for route in ("files", "cdn", "stream"):
        app.add_url_rule(
            f"/{route}/<segment>",
            f"artifact:{route}",
            artifact_view,
            methods=["GET"],
            defaults={"route": route},
        )

    @app.get("/_sandbox/ledger")
    def ledger_view() -> Response:
        return Response(
            json.dumps(engine.ledger_snapshot(), allow_nan=False), mimetype="application/json"
        )

    @app.get("/_sandbox/health")
    def health_view() -> dict[str, Any]:
        return {"ok": True, "profile": engine.profile.name, "url": engine.base_url}

    @app.route("/_sandbox/faults", methods=["GET", "POST"])
    def faults_view() -> tuple[dict[str, Any], int]:
        if request.method == "POST":
            body = request.get_json(force=True, silent=True)
            try:
                if isinstance(body, dict) and isinstance(body.get("spec"), str):
                    faults = parse_faults(body["spec"])
                elif isinstance(body, dict):
                    faults = FaultSpec(**body)
                else:
                    raise ValueError('send {"spec": "drop=0.3,..."} or {"drop": 0.3, ...}')
            except (TypeError, ValueError) as exc:
                return {"error": str(exc)}, 400
            engine.set_faults(faults)
        return {"faults": engine.faults.to_spec(), "values": engine.faults.as_dict()}, 200

    @app.post("/_sandbox/reset")
    def reset_view() -> dict[str, Any]:
        engine.reset()
        return {"ok": True}

    @app.post("/_sandbox/credits")
    def credits_view() -> tuple[dict[str, Any], int]:
        body = request.get_json(force=True, silent=True)
        value = body.get("credits") if isinstance(body, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return {"error": 'send {"credits": <int >= 0>}'}, 400
        engine.set_credits(value)
        return {"credits": engine.balance(engine.clock())}, 200

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return render(Answer(404, "Not Found", None, 404))

    @app.errorhandler(405)
    def not_allowed(_: Exception) -> Response:
        return render(Answer(405, "Method Not Allowed", None, 405))

    return app


class ResetMiddleware:
    """Closes the connection without a response when a view set ``sandbox.reset``.

    Under waitress the write callable returned by ``start_response`` is a bound method of the
    waitress task, which knows its channel and socket: the socket is shut down (FIN, then RST
    on close because SO_LINGER is 0) before a single byte of the response is written, so the
    client sees the connection end with no status line at all. Under any other server (the
    Flask test client) it raises :class:`ConnectionResetError` instead.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def intercept(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            if not environ.get(RESET_FLAG):
                return start_response(status, headers, exc_info)
            kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
            write = start_response(status, kept, exc_info)
            if not abort_connection(write):
                raise ConnectionResetError("sandbox reset fault: connection closed")
            return write

        body = self.app(environ, intercept)
        if environ.get(RESET_FLAG):
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return body


def abort_connection(write: object) -> bool:
    """Shut down the socket behind a waitress ``write`` callable; False when there is none."""
    task = getattr(write, "__self__", None)
    channel = getattr(task, "channel", None)
    sock = getattr(channel, "socket", None)
    if not isinstance(sock, socket.socket):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    task.close_on_finish = True  # type: ignore[union-attr]
    return True
