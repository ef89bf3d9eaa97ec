"""The status page: ``/ui/`` (counts, the job list with filters, paginated) and
``/ui/jobs/<key>`` (why, params, result, files, parents and children, the event timeline),
with retry, cancel and resolve as POST forms (CSRF-protected) and live updates by short
polling of JSON twins (``/ui/live`` and ``/ui/jobs/<key>/live``).

Same access rule as the job API: loopback callers only, or, when ``[callbacks]
api_token_env`` names a token, that token as a bearer header or through a login form that
keeps it in a signed session cookie. Nothing comes from the internet: Jinja2 templates and a
little CSS and JS from this package. Everything shown is escaped (prompts, callback bodies and
upstream text are untrusted).
"""

from __future__ import annotations

import hmac
import json
import math
import mimetypes
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)

from orchestrator import __version__
from orchestrator.clock import isoformat
from orchestrator.domain import Job
from orchestrator.exceptions import InvalidTransition, JobNotFound, UsageError
from orchestrator.observations import Resolution
from orchestrator.states import JobState
from orchestrator.web.access import bearer_matches, local_caller

PAGE_SIZE: Final = 50
EXCERPT: Final = 2000
_MEDIA = {"audio", "video", "image", "text"}


def register_ui(app: Flask, ctx: Any) -> None:
    """Mount the status page on ``app`` (``ctx``: the web app's WebContext)."""
    app.secret_key = app.secret_key or secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")
    ui = Blueprint("ui", __name__, url_prefix="/ui", static_folder="static",
                   template_folder="templates")  # fmt: skip

    @ui.before_request
    def _guard() -> Any:
        if request.endpoint in ("ui.login", "ui.static"):
            return None
        return _refusal(ctx)

    @ui.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        nxt = request.values.get("next") or url_for("ui.index")
        if not nxt.startswith("/ui/"):
            nxt = url_for("ui.index")
        if ctx.api_token is None:
            return redirect(nxt)
        error = None
        if request.method == "POST":
            given = request.form.get("token", "")
            if hmac.compare_digest(given.encode(), ctx.api_token.encode()):
                session["auth"] = _fingerprint(ctx.api_token)
                return redirect(nxt)
            error = "that is not the token"
        return render_template("login.html", next=nxt, error=error, **_common(ctx)), (
            401 if error else 200
        )

    @ui.get("/")
    def index() -> Any:
        filters, jobs = _filtered(ctx)
        pages = max(1, math.ceil(len(jobs) / PAGE_SIZE))
        page = min(max(1, _int(request.args.get("page"), 1)), pages)
        shown = jobs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        by_kind = ctx.store.count_by_state_and_kind()  # counts and kinds in one GROUP BY
        counts: dict[JobState, int] = {}
        for state, _kind, n in by_kind:
            counts[state] = counts.get(state, 0) + n

        def page_url(n: int) -> str:
            return _with_page("ui.index", n)

        live = _with_page("ui.live", page)
        return render_template(
            "list.html",
            rows=[_row(ctx, job) for job in shown],
            counts=[(s.value, counts[s]) for s in JobState if counts.get(s)],
            total=sum(counts.values()),
            states=[s.value for s in JobState],
            kinds=sorted({kind for _state, kind, _n in by_kind}),
            filters=filters,
            page=page,
            pages=pages,
            page_url=page_url,
            live_url=live,
            **_common(ctx),
        )

    @ui.get("/live")
    def live() -> Any:
        _filters, jobs = _filtered(ctx)
        page = max(1, _int(request.args.get("page"), 1))
        shown = jobs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return jsonify({"rows": [_row(ctx, job) for job in shown]})

    @ui.get("/jobs/<key>")
    def job(key: str) -> Any:
        try:
            detail = ctx.service.detail(key)
        except JobNotFound:
            abort(404)
        j = detail.job
        session.setdefault("csrf", secrets.token_urlsafe(24))
        return render_template(
            "job.html",
            job=j,
            why=detail.why,
            children=detail.children,
            params=_pretty(j.params),
            result=_pretty(j.result) if j.result is not None else None,
            artifacts=[_artifact(j, a) for a in j.artifacts],
            events=[_event(e) for e in detail.events],
            actions=_actions(j),
            csrf=session["csrf"],
            message=request.args.get("message"),
            live_url=url_for("ui.job_live", key=j.key),
            **_common(ctx),
        )

    @ui.get("/jobs/<key>/live")
    def job_live(key: str) -> Any:
        # polled every 2 s per open page: the job and its events, not the whole detail
        try:
            j = ctx.service.get(key)
        except JobNotFound:
            abort(404)
        why = ctx.service.why(j, ctx.store.events(j.id), ctx.service.hold())
        return jsonify({"state": j.state.value, "why": why, "upstream_status": j.upstream_status})

    @ui.post("/jobs/<key>/<action>")
    def act(key: str, action: str) -> Any:
        token = session.get("csrf")
        if not token or not hmac.compare_digest(str(request.form.get("csrf", "")), str(token)):
            abort(400, "the form is stale or was not made by this page: reload it")
        try:
            if action == "retry":
                ctx.service.retry(key)
            elif action == "cancel":
                ctx.service.cancel(key)
            elif action == "resolve":
                how = Resolution(request.form.get("how", "task_id"))
                ctx.service.resolve(key, how, request.form.get("task_id") or None)
            else:
                abort(404)
            message = f"{action}: done"
        except JobNotFound:
            abort(404)
        except (InvalidTransition, UsageError, ValueError) as exc:
            message = f"{action}: {exc}"
        return redirect(url_for("ui.job", key=key, message=message), 303)

    @ui.get("/files/<key>/<name>")
    def file(key: str, name: str) -> Any:
        try:
            j = ctx.service.get(key)
        except JobNotFound:
            abort(404)
        artifact = j.artifact(name)
        if artifact is None or artifact.path is None or ctx.artifacts_dir is None:
            abort(404)
        root = Path(ctx.artifacts_dir).resolve()
        path = Path(artifact.path).resolve()
        if root not in path.parents or not path.is_file():
            abort(404)  # only files the daemon stored under its own artifacts directory
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=kind, conditional=True, download_name=path.name)

    app.register_blueprint(ui)


def _with_page(endpoint: str, page: int) -> str:
    """This request's filters, another page of them."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    return url_for(endpoint, page=page, **args)


def _refusal(ctx: Any) -> Any:
    if ctx.api_token is not None:
        if bearer_matches(ctx.api_token):
            return None
        if hmac.compare_digest(str(session.get("auth", "")), _fingerprint(ctx.api_token)):
            return None
        return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))
    if local_caller():
        return None
    return Response("the status page answers loopback callers only (see api_token_env)", 403)


def _fingerprint(token: str) -> str:
    """What the session keeps: a digest of the token, never the token."""
    import hashlib

    return hashlib.sha256(b"orchestrator-ui:" + token.encode()).hexdigest()


def _common(ctx: Any) -> dict[str, Any]:
    banners = []
    health = ctx.upstream_health() if ctx.upstream_health is not None else {}
    if health.get("breaker_open"):
        banners.append({"level": "bad", "text": "the upstream looks down: circuit breaker open"})
    hold = ctx.service.hold()
    if hold:
        banners.append({"level": "warn", "text": f"submitting held: {hold}"})
    uncertain = ctx.store.count_by_state().get(JobState.UNCERTAIN, 0)
    if uncertain:
        banners.append(
            {"level": "bad", "text": f"{uncertain} job(s) uncertain: they need a decision"}
        )
    return {"version": __version__, "banners": banners}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _when(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment + timedelta(minutes=1) if end and len(value) <= 16 else moment


def _filtered(ctx: Any) -> tuple[dict[str, str], list[Job]]:
    args = request.args
    filters = {k: args.get(k, "").strip() for k in ("state", "kind", "q", "since", "until")}
    states = None
    if filters["state"]:
        try:
            states = [JobState(filters["state"])]
        except ValueError:
            filters["state"] = ""
    jobs = ctx.store.list_jobs(states=states, kind=filters["kind"] or None)
    needle = filters["q"].lower()
    since, until = _when(filters["since"]), _when(filters["until"], end=True)
    chosen = [
        j
        for j in jobs
        if (not needle or needle in j.key.lower() or needle in _prompt(j).lower())
        and (since is None or j.created_at >= since)
        and (until is None or j.created_at < until)
    ]
    chosen.sort(key=lambda j: (j.updated_at, j.id), reverse=True)
    return filters, chosen


def _prompt(job: Job) -> str:
    value = job.params.get("prompt")
    return value if isinstance(value, str) else ""


def _row(ctx: Any, job: Job) -> dict[str, Any]:
    note = job.error.message if job.error else ""
    stuck = job.state == JobState.UNCERTAIN
    if job.state == JobState.UNCERTAIN:
        note = "needs a decision: resolve it"
    elif job.state == JobState.WAITING:
        note = "waiting for " + ", ".join(job.parents)
    elif job.state in (JobState.PENDING, JobState.RUNNING) and job.accepted_at is not None:
        deadline_s = ctx.slow_after_s
        age = (ctx.clock() - job.accepted_at).total_seconds()
        if deadline_s is not None and age > deadline_s:
            stuck, note = True, f"slow: {age:.0f} s since it was accepted"
    return {
        "key": job.key,
        "kind": job.kind,
        "state": job.state.value,
        "upstream": job.upstream_status or "-",
        "updated_at": isoformat(job.updated_at) or "",
        "note": note[:120],
        "stuck": stuck,
    }


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _artifact(job: Job, artifact: Any) -> dict[str, Any]:
    stored = artifact.path is not None and artifact.state.value == "stored"
    return {
        "name": artifact.name,
        "media": artifact.media if artifact.media in _MEDIA else "file",
        "stored": stored,
        "bytes": artifact.bytes,
        "sha256": artifact.sha256,
        "href": url_for("ui.file", key=job.key, name=artifact.name),
    }


def _event(event: Any) -> dict[str, Any]:
    moved = event.to_state is not None and event.from_state != event.to_state
    transition = (
        f"{event.from_state.value if event.from_state else ''} → {event.to_state.value}"
        if moved
        else ""
    )
    payload = json.dumps(event.payload, ensure_ascii=False, sort_keys=True) if event.payload else ""
    if len(payload) > EXCERPT:
        payload = payload[:EXCERPT] + " …"
    return {
        "at": (isoformat(event.at) or "")[:23].replace("T", " "),
        "source": event.source,
        "node": event.node or "",
        "type": event.type,
        "transition": transition,
        "note": event.note,
        "payload": payload,
    }


def _actions(job: Job) -> list[dict[str, str]]:
    found = []
    if job.state in (JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT):
        found.append({"name": "retry", "label": "retry"})
    if job.state not in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
        found.append({"name": "cancel", "label": "cancel"})
    if job.state == JobState.UNCERTAIN:
        found.append({"name": "resolve", "label": "resolve"})
    return found
