"""The Flask app: the per-job callback endpoint, health, and a small job API.

Callback handling, in order: source allowlist (403, nothing written), size cap (413), token
lookup by hash (unknown: 404, nothing written), JSON only (415), JSON parse and schema (400,
recorded on the job), the kie HMAC signature when a key is configured (401, recorded),
task_id check (mismatch: 409, recorded as suspicious), then the reconciler — the raw body is
committed with the event row BEFORE the 2xx goes out. In `verify` mode the callback only
wakes the poller; in `trust` mode its data is applied directly. Bad input never gets a 5xx;
503 means only "our side failed, retry". docs/security.md has the threat model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from orchestrator import faultpoints
from orchestrator.config import CallbackMode
from orchestrator.domain import Job
from orchestrator.exceptions import (
    CallbackError,
    CallbackNotFound,
    CallbackRejected,
    CallbackUnauthorized,
    InvalidParams,
    InvalidTransition,
    JobKeyConflict,
    JobNotFound,
    ObservationError,
    RequestRejected,
    UsageError,
)
from orchestrator.groupcommit import GroupCommitter
from orchestrator.jsonvalues import loads_strict
from orchestrator.logs import get_logger
from orchestrator.metrics import METRICS
from orchestrator.observations import CallbackReceived, UpstreamReport
from orchestrator.providers.base import Provider
from orchestrator.reconciler import Outcome, Pending, Reconciler
from orchestrator.service import JobService, children_index, tree_json
from orchestrator.states import JobState
from orchestrator.stores.base import Store, TokenOwner
from orchestrator.tokens import hash_token
from orchestrator.web.access import bearer_matches, local_caller
from orchestrator.web.callback_auth import CallbackAuth
from orchestrator.web.ui import register_ui

log = get_logger("orchestrator.web")


#: characters of a refused callback body kept in its event
REFUSED_EXCERPT = 2048

_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


@dataclass
class WebContext:
    store: Store
    reconciler: Reconciler
    provider: Provider
    service: JobService
    clock: Callable[[], datetime]
    mode: CallbackMode = CallbackMode.VERIFY
    max_body_bytes: int = 1024 * 1024
    #: HMAC signature and source-address checks (default: none)
    auth: CallbackAuth = field(default_factory=CallbackAuth)
    #: group commit for callbacks (one fsync per batch); None: one transaction per callback
    ingest: GroupCommitter | None = None
    #: the job API's bearer token; None: the job API answers loopback callers only
    api_token: str | None = None
    #: what /healthz reports about the upstream (the daemon passes its breaker's state)
    upstream_health: Callable[[], dict[str, Any]] | None = None
    #: what /readyz checks beyond the database: (ready, what was checked)
    readiness: Callable[[], tuple[bool, dict[str, Any]]] | None = None
    #: where stored files live (the status page serves them from there only)
    artifacts_dir: Path | None = None
    #: the status page marks a pending or running job accepted longer ago than this as slow
    slow_after_s: float | None = None


#: callback answers as metric outcomes (orchestrator_callbacks_total{outcome})
_CALLBACK_OUTCOMES = {
    200: "accepted",
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "unknown_token",
    413: "too_large",
    415: "not_json",
    503: "unavailable",
}


def _answer(code: int, msg: str, status: int | None = None) -> tuple[Response, int]:
    return jsonify({"code": code, "msg": msg}), status or code


class _StrictJSON(DefaultJSONProvider):
    """Every JSON this server answers is strict JSON (never ``NaN`` or ``Infinity``)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def create_app(ctx: WebContext) -> Flask:
    app = Flask("orchestrator")
    app.json = _StrictJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = ctx.max_body_bytes
    # "/callbacks//x" is a 404, not a redirect to somewhere else
    app.url_map.merge_slashes = False

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return _answer(status, exc.description or exc.name, status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # Not the caller's fault (the database is down, a bug): 503 so the upstream retries.
        log.exception("http_handler_failed", path=request.path)
        return _answer(503, "temporarily unavailable", 503)

    @app.post("/callbacks/<token>")
    def callback(token: str) -> tuple[Response, int]:
        try:
            answer = _handle_callback(ctx, token)
        except CallbackError as exc:
            answer = _answer(exc.status_code, exc.message)
        except Exception:
            METRICS.callbacks.labels("unavailable").inc()
            raise
        METRICS.callbacks.labels(_CALLBACK_OUTCOMES.get(answer[1], f"http_{answer[1]}")).inc()
        return answer

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        counts = ctx.store.count_by_state()
        body: dict[str, Any] = {"status": "ok", "jobs": {s.value: n for s, n in counts.items()}}
        if ctx.upstream_health is not None:
            body["upstream"] = ctx.upstream_health()
        return jsonify(body), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks: dict[str, Any] = {}
        ready = True
        try:
            ctx.store.count_by_state()
            checks["database"] = "reachable"
        except Exception as exc:
            ready, checks["database"] = False, f"unreachable: {type(exc).__name__}"
        if ctx.readiness is not None:
            fine, more = ctx.readiness()
            ready = ready and fine
            checks.update(more)
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return jsonify(body), 200 if ready else 503

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(METRICS.exposition(), mimetype=CONTENT_TYPE_LATEST)

    register_ui(app, ctx)

    @app.before_request
    def _guard_job_api() -> tuple[Response, int] | None:
        if not request.path.startswith(("/api/", "/metrics")):
            return None
        return _api_refusal(ctx)

    @app.get("/api/jobs")
    def list_jobs() -> tuple[Response, int]:
        states = None
        if request.args.get("state"):
            try:
                states = [JobState(request.args["state"])]
            except ValueError:
                return _answer(400, f"unknown state {request.args['state']!r}")
        jobs = ctx.service.list(states=states, kind=request.args.get("kind") or None)
        index = children_index(ctx.service.list() if states or request.args.get("kind") else jobs)
        hold = ctx.service.hold()
        return jsonify([tree_json(j, index, hold) for j in jobs]), 200

    @app.get("/api/jobs/<key>")
    def get_job(key: str) -> tuple[Response, int]:
        try:
            detail = ctx.service.detail(key)
        except JobNotFound as exc:
            return _answer(404, str(exc))
        return jsonify(detail.to_json()), 200

    @app.post("/api/jobs")
    def submit_job() -> tuple[Response, int]:
        try:
            body = _json_body()
        except RequestRejected as exc:
            return _answer(exc.status_code, exc.message)
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            return _answer(
                400, 'expected a JSON object {"kind": ..., "params": {...}, "key"?: ...}'
            )
        params = body.get("params", {})
        key = body.get("key")
        if not isinstance(params, dict) or (key is not None and not isinstance(key, str)):
            return _answer(400, "params must be an object and key a string")
        after, for_each = body.get("after"), body.get("for_each")
        if after is not None and not (
            isinstance(after, str)
            or (isinstance(after, list) and all(isinstance(a, str) for a in after))
        ):
            return _answer(400, "after must be a job key or a list of job keys")
        if for_each is not None and not isinstance(for_each, str):
            return _answer(400, "for_each must be a string (KEY.tracks or KEY.result.PATH)")
        try:
            job, created = ctx.service.submit(
                body["kind"], params, key, after=after, for_each=for_each
            )
        except JobKeyConflict as exc:
            return _answer(409, str(exc))
        except (InvalidParams, UsageError) as exc:
            return _answer(400, str(exc))
        return jsonify(job.to_json()), 201 if created else 200

    @app.post("/api/jobs/<key>/<action>")
    def operate(key: str, action: str) -> tuple[Response, int]:
        actions = {"cancel": ctx.service.cancel, "retry": ctx.service.retry}
        if action not in actions:
            return _answer(404, f"unknown action {action!r}")
        try:
            if action == "cancel" and request.args.get("tree") in ("1", "true"):
                cancelled = ctx.service.cancel_tree(key)
                return jsonify([j.to_json() for j in cancelled]), 200
            job = actions[action](key)
        except JobNotFound as exc:
            return _answer(404, str(exc))
        except InvalidTransition as exc:
            return _answer(409, str(exc))
        return jsonify(job.to_json()), 200

    return app


def _api_refusal(ctx: WebContext) -> tuple[Response, int] | None:
    """The job API: a bearer token when one is configured, else loopback callers only."""
    if ctx.api_token is not None:
        if bearer_matches(ctx.api_token):
            return None
        return _answer(401, "the job API needs Authorization: Bearer <token>")
    if local_caller():
        return None
    return _answer(403, "the job API answers loopback callers only (see [callbacks] api_token_env)")


def _json_body() -> Any:
    if request.mimetype != "application/json":
        raise RequestRejected("expected Content-Type: application/json", status_code=415)
    try:
        body = loads_strict(request.get_data())
        # what cannot be stored as UTF-8 JSON (lone surrogates) is refused here, not at commit
        json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except RequestEntityTooLarge:
        raise
    except RecursionError:
        raise RequestRejected("body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeError) as exc:
        raise RequestRejected(f"body is not valid JSON: {str(exc)[:200]}") from None
    return body


def _handle_callback(ctx: WebContext, token: str) -> tuple[Response, int]:
    ctx.auth.sources.check(request.remote_addr, request.headers.get("X-Forwarded-For"))
    if request.content_length is not None and request.content_length > ctx.max_body_bytes:
        raise CallbackRejected("body too large", status_code=413)
    if not _TOKEN.fullmatch(token):
        raise CallbackNotFound("unknown callback URL")
    owner = ctx.store.find_by_token(hash_token(token))
    if owner is None:
        raise CallbackNotFound("unknown callback URL")
    job = owner.job
    now = ctx.clock()
    try:
        body = _json_body()
    except RequestRejected as exc:
        _record_refusal(ctx, job, now, "callback_rejected", exc.message)
        raise CallbackRejected(exc.message, status_code=exc.status_code) from None
    try:
        report = ctx.provider.parse_callback(job.kind, body)
    except CallbackRejected as exc:
        _record_refusal(ctx, job, now, "callback_rejected", exc.message, raw=body)
        raise
    ticket = None
    if ctx.auth.signature is not None:
        try:
            ticket = ctx.auth.signature.verify_headers(
                report.task_id or "", request.headers, now.timestamp(), request.get_data()
            )
        except CallbackUnauthorized as exc:
            _record_refusal(ctx, job, now, "callback_unauthorized", exc.message, raw=body)
            raise
    try:
        outcome = _accept_callback(ctx, owner, report, body, now)
    except ObservationError as exc:
        # this body will never be accepted (data the store cannot hold, or a bug folding
        # it): say so with a 4xx and keep an excerpt, instead of a 503 retried forever
        if ticket is not None:
            ticket.release()
        _record_refusal(ctx, job, now, "callback_rejected", exc.message, raw=body)
        raise CallbackRejected(f"callback cannot be recorded: {exc.message}") from None
    except BaseException:
        if ticket is not None:
            ticket.release()  # not committed: the upstream's retry must not count as a replay
        raise
    if ticket is not None:
        ticket.commit()
    faultpoints.reach("callback.after_commit")
    log.info(
        "callback_accepted",
        key=job.key,
        status=report.status.value,
        state=outcome.job.state.value,
        changed=outcome.transition is not None,
    )
    return _answer(200, "success")


def _accept_callback(
    ctx: WebContext, owner: TokenOwner, report: UpstreamReport, body: Any, now: datetime
) -> Outcome:
    """Commit a validated callback through the reconciler (refusing a task_id mismatch)."""
    job = owner.job
    # A callback of a superseded attempt (the job was retried or resubmitted since) names
    # another task by design: it is recorded, answered 2xx so the upstream stops retrying,
    # and changes nothing (the machine ignores it). Only the current attempt's callback must
    # agree with the job's taskId.
    current = owner.attempt == job.attempt
    if current and report.task_id and job.task_id and report.task_id != job.task_id:
        _record_refusal(
            ctx, job, now, "callback_suspicious", "task_id does not match this job", raw=body
        )
        raise CallbackError("task_id does not match this callback URL", status_code=409)
    faultpoints.reach("callback.before_commit")
    observation = CallbackReceived(report, ctx.mode == CallbackMode.TRUST, owner.attempt)
    if ctx.ingest is not None:
        return ctx.ingest.submit(Pending(job.id, observation, now, raw=body))
    return ctx.reconciler.observe(job, observation, now, raw=body)


def _record_refusal(
    ctx: WebContext, job: Job, now: datetime, kind: str, message: str, raw: Any = None
) -> None:
    # a refused body is kept only as an excerpt: whoever holds a token must not be able to
    # grow the event log by 1 MiB per request
    excerpt = None if raw is None else json.dumps(raw, ensure_ascii=False)[:REFUSED_EXCERPT]
    ctx.reconciler.record(
        job, source="callback", type=kind, payload={"raw_excerpt": excerpt}, note=message, now=now
    )
    log.warning(kind, key=job.key, reason=message)
