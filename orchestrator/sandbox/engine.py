"""The imitation upstream without HTTP: tasks, credits, limits, faults, callbacks, ledger.

The Flask app (app.py) turns requests into calls here and :class:`Answer` objects back into
responses. Everything that decides *what* the upstream answers is in this module; how the
bytes leave (status line, reset connection, delay) is the app's business.
"""

from __future__ import annotations

import hmac
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.sandbox import payloads
from orchestrator.sandbox.artifacts import (
    ArtifactResponse,
    UrlSigner,
    describe,
    is_known_extension,
    serve,
    signed_url,
    xml_error,
)
from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.delivery import CallbackDelivery, Delivery
from orchestrator.sandbox.faults import FaultDice, FaultSpec, RequestFaults
from orchestrator.sandbox.kinds import MUSIC_FAMILY, Kind
from orchestrator.sandbox.ledger import Ledger, snapshot, stamp
from orchestrator.sandbox.lifecycle import TaskDraws, build_plan
from orchestrator.sandbox.markers import Failure, failure_for_code, failure_from_markers
from orchestrator.sandbox.payloads import Channel, Route
from orchestrator.sandbox.profiles import Reason
from orchestrator.sandbox.ratelimit import SlidingWindow
from orchestrator.sandbox.references import (
    EXCLUSIVE_KINDS,
    Source,
    check_references,
    make_lyrics,
    make_tracks,
    stable_hex,
)
from orchestrator.sandbox.tasks import Task
from orchestrator.sandbox.validation import Rejection, validate

SUBMIT_PATHS: dict[str, Kind] = {
    "/api/v1/generate": "generate_music",
    "/api/v1/generate/extend": "extend",
    "/api/v1/generate/replace-section": "replace_section",
    "/api/v1/mp4/generate": "music_video",
    "/api/v1/wav/generate": "wav",
    "/api/v1/vocal-removal/generate": "vocal_removal",
    "/api/v1/lyrics": "lyrics",
}
DETAIL_PATHS: dict[str, frozenset[str]] = {
    "/api/v1/generate/record-info": MUSIC_FAMILY,
    "/api/v1/mp4/record-info": frozenset({"music_video"}),
    "/api/v1/wav/record-info": frozenset({"wav"}),
    "/api/v1/vocal-removal/record-info": frozenset({"vocal_removal"}),
    "/api/v1/lyrics/record-info": frozenset({"lyrics"}),
}
CREDIT_PATH = "/api/v1/generate/credit"
#: credits one submit costs (531 failures give them back)
COSTS: dict[str, int] = {
    "generate_music": 12,
    "extend": 12,
    "replace_section": 5,
    "music_video": 2,
    "wav": 1,
    "vocal_removal": 10,
    "lyrics": 1,
}
#: kinds of which one audio may have only one (live) task: a second one answers 409


@dataclass(frozen=True)
class Answer:
    """One envelope answer: ``{"code", "msg", "data"}`` plus how to send it."""

    code: int
    msg: str
    data: Any = None
    http_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def envelope(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg, "data": self.data}


class Engine:
    """All the sandbox's state. Thread-safe; every method may run on any request thread."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.profile = config.provider
        self.clock = clock
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self._faults = config.faults
        self._lock = threading.RLock()
        self._signer = UrlSigner(bytes.fromhex(stable_hex("sandbox-url-secret", config.seed)))
        self._submit_limit = SlidingWindow(config.rate_limit_count, config.rate_limit_window_s)
        self._poll_limit = SlidingWindow(config.poll_limit_per_s, 1.0)
        host = "127.0.0.1" if config.host in ("", "0.0.0.0", "::") else config.host  # noqa: S104
        #: the host part of local URLs (IPv6 in brackets)
        self.local_host = f"[{host}]" if ":" in host else host
        self.base_url = (config.public_url or f"http://{self.local_host}:{config.port}").rstrip("/")
        self.delivery = CallbackDelivery(
            ledger=self.ledger,
            build_body=self._callback_body,
            on_give_up=self._callback_gave_up,
            clock=clock,
            time_scale=config.time_scale,
            hmac_key=config.hmac_key,
        )
        self._reset_state()

    def _reset_state(self) -> None:
        self.dice = FaultDice(self.config.seed)
        self._tasks: dict[str, Task] = {}
        self._counter = 0
        self._audio_index: dict[str, tuple[str, int]] = {}
        self._exclusive: dict[tuple[str, str], str] = {}
        self._spent = 0
        self._refunds: list[tuple[float, int]] = []
        self._credit_start = self.config.credits
        self._artifact_info: dict[str, dict[str, Any]] = {}

    # -- control --------------------------------------------------------------------------
    @property
    def faults(self) -> FaultSpec:
        return self._faults

    def set_faults(self, faults: FaultSpec) -> None:
        self._faults = faults

    def reset(self) -> None:
        """Forget every task, ledger entry, scheduled callback and limit; refill credits."""
        with self._lock:
            self.delivery.clear()
            self.ledger.clear()
            self._submit_limit.clear()
            self._poll_limit.clear()
            self._reset_state()

    def set_credits(self, balance: int) -> None:
        with self._lock:
            self._credit_start = balance + self._spent - self._refunded(self.clock())

    def close(self) -> None:
        self.stopping.set()
        self.delivery.close()

    def roll_request_faults(self) -> RequestFaults:
        faults = self._faults
        return RequestFaults(
            slow=self.dice.roll("slow", faults.slow),
            reset=self.dice.roll("reset", faults.reset),
            http200=self.dice.roll("http200", faults.http200),
        )

    # -- answers --------------------------------------------------------------------------
    def _error(
        self,
        reason: Reason,
        request_faults: RequestFaults,
        field_name: str = "",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        code = self.profile.code_for(reason)
        http_status = 200 if request_faults.http200 else (code if 100 <= code <= 599 else 500)
        return Answer(
            code, self.profile.message_for(reason, field_name), None, http_status, headers or {}
        )

    def _server_fault(self, name: str, request_faults: RequestFaults) -> Answer:
        code = self.dice.choice(f"{name}_code", (500, 455))
        return self._error("server_error" if code == 500 else "maintenance", request_faults)

    def _reject(
        self, path: str, answer: Answer, now: float, request_faults: RequestFaults, **extra: Any
    ) -> Answer:
        self.ledger.rejected(
            {
                "path": path,
                "code": answer.code,
                "http_status": answer.http_status,
                "msg": answer.msg,
                "faults": request_faults.names(),
                **extra,
                **stamp(now),
            }
        )
        return answer

    def check_key(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.config.api_key.encode())

    # -- credits --------------------------------------------------------------------------
    def _refunded(self, now: float) -> int:
        return sum(cost for at, cost in self._refunds if at <= now)

    def balance(self, now: float) -> int:
        with self._lock:
            return self._credit_start - self._spent + self._refunded(now)

    def credit(self, key_ok: bool, request_faults: RequestFaults) -> Answer:
        now = self.clock()
        if not key_ok:
            answer = self._error("unauthorized", request_faults)
            return self._reject(CREDIT_PATH, answer, now, request_faults)
        return Answer(200, "success", self.balance(now))

    # -- submit ---------------------------------------------------------------------------
    def submit(
        self, kind: Kind, path: str, body: Any, key_ok: bool, request_faults: RequestFaults
    ) -> Answer:
        now = self.clock()
        entry: dict[str, Any] = {
            "taskId": None,
            "kind": kind,
            "path": path,
            "params": body,
            **stamp(now),
            "api_key_ok": key_ok,
            "faults": request_faults.names(error=False),
        }
        answer, task, early = self._submit(kind, path, body, key_ok, request_faults, now, entry)
        if request_faults.http200 and answer.code != 200:
            entry["faults"].append("http200")
        entry["code"] = answer.code
        entry["http_status"] = answer.http_status
        entry["outcome"] = "accepted" if task is not None else "rejected"
        if task is not None:
            entry["taskId"] = task.task_id
        self.ledger.submit(entry)
        if task is None:
            self._reject(path, answer, now, request_faults, kind=kind)
        for delivery in early:  # the early fault: the callback goes out before our answer
            self.delivery.deliver_now(delivery)
        return answer

    def _submit(
        self,
        kind: Kind,
        path: str,
        body: Any,
        key_ok: bool,
        request_faults: RequestFaults,
        now: float,
        entry: dict[str, Any],
    ) -> tuple[Answer, Task | None, list[Delivery]]:
        faults = self._faults
        if not key_ok:
            return self._error("unauthorized", request_faults), None, []
        if not self._submit_limit.admit(self.config.api_key, now):
            wait = self._submit_limit.retry_after(self.config.api_key, now)
            entry["faults"].append("limit")
            headers = {"Retry-After": str(max(1, round(wait + 0.5)))}
            return self._error("rate_limited", request_faults, headers=headers), None, []
        if self.dice.roll("rate_limit", faults.rate_limit):
            entry["faults"].append("rate_limit")
            return self._error("rate_limited", request_faults), None, []
        if self.dice.roll("submit_error", faults.submit_error):
            entry["faults"].append("submit_error")
            return self._server_fault("submit_error", request_faults), None, []
        rejection = validate(kind, body)
        if rejection is not None:
            return self._rejection(rejection, request_faults), None, []
        with self._lock:
            checked = check_references(
                kind, body, now, self._tasks, self._audio_index, self._exclusive
            )
            if isinstance(checked, Rejection):
                return self._rejection(checked, request_faults), None, []
            if self.balance(now) < COSTS[kind]:
                return self._error("insufficient_credits", request_faults), None, []
            proof = None
            if self.dice.roll("accept_5xx", faults.accept_5xx):
                entry["faults"].append("accept_5xx")
                proof = "before" if self.dice.roll("accept_5xx_proof", 0.5) else "after"
            task, early = self._create_task(kind, path, body, checked, now, proof)
        if proof is not None:
            # the task exists and is paid for; the answer says otherwise
            return self._server_fault("accept_5xx", request_faults), task, early
        return Answer(200, "success", {"taskId": task.task_id}), task, early

    def _rejection(self, rejection: Rejection, request_faults: RequestFaults) -> Answer:
        return self._error(rejection.reason, request_faults, rejection.field)

    def _create_task(
        self,
        kind: Kind,
        path: str,
        body: dict[str, Any],
        source: Source,
        now: float,
        proof: str | None = None,
    ) -> tuple[Task, list[Delivery]]:
        faults = self._faults
        scale = self.config.time_scale
        index = self._counter
        self._counter += 1
        draws = TaskDraws.draw(random.Random(f"{self.config.seed}:task:{index}"))
        task_faults: list[str] = []
        failure: Failure | None = failure_from_markers(kind, body) or source.failure
        if failure is None and draws.fail < faults.fail:
            code = (501 if draws.fail_code < 0.5 else 531) if kind in MUSIC_FAMILY else 500
            failure = failure_for_code(kind, code)
            task_faults.append("fail")
        plan = build_plan(kind, draws, failure, faults, scale, proof, self.config.durations)
        task_faults.extend(plan.faults)
        if faults.lag > 0:
            task_faults.append("lag")
        task = Task(
            task_id=stable_hex(self.config.seed, "task", index)[:32],
            index=index,
            kind=kind,
            path=path,
            params=dict(body),
            submitted_at=now,
            draws=draws,
            plan=plan,
            tracks=make_tracks(kind, body, index, draws, source, self.config.seed),
            texts=make_lyrics(kind, body, index),
            callback_url=str(body["callBackUrl"]),
            cost=COSTS[kind],
            lag=faults.lag * scale,
            source_task_id=source.task.task_id if source.task else None,
            source_audio_id=source.track.audio_id if source.track else None,
            faults=tuple(task_faults),
        )
        self._tasks[task.task_id] = task
        for n, track in enumerate(task.tracks):
            self._audio_index[track.audio_id] = (task.task_id, n)
        if kind in EXCLUSIVE_KINDS and task.source_audio_id is not None:
            self._exclusive[(kind, task.source_audio_id)] = task.task_id
        self._spent += task.cost
        if failure is not None and failure.refund:
            self._refunds.append((task.completed_at, task.cost))
        timeout = self.config.callback_timeout_s or (10.0 if task.is_music else 15.0)
        early: list[Delivery] = []
        for planned in plan.callbacks:
            delivery = Delivery(
                task_id=task.task_id,
                stage_index=planned.stage_index,
                stage=planned.callback,
                url=task.callback_url,
                timeout_s=timeout,
                terminal=plan.stages[planned.stage_index].terminal,
                copy=planned.copy,
                early=planned.early,
            )
            if planned.early:
                early.append(delivery)
            else:
                self.delivery.schedule(delivery, now + planned.due)
        return task, early

    # -- callbacks ------------------------------------------------------------------------
    def _callback_body(self, delivery: Delivery) -> dict[str, Any] | None:
        with self._lock:
            task = self._tasks.get(delivery.task_id)
            if task is None:
                return None
            return payloads.callback_body(task, delivery.stage_index, self._url)

    def _callback_gave_up(self, delivery: Delivery, now: float) -> None:
        if not (delivery.terminal and self.config.callback_exception_on_give_up):
            return
        with self._lock:
            task = self._tasks.get(delivery.task_id)
            if task is None or not task.succeeds or task.callback_exception_at is not None:
                return
            if self.ledger.delivered(task.task_id, delivery.stage):
                return
            task.callback_exception_at = max(now, task.completed_at)

    # -- record-info ----------------------------------------------------------------------
    def detail(
        self, path: str, task_id: str | None, key_ok: bool, request_faults: RequestFaults
    ) -> Answer:
        now = self.clock()
        families = DETAIL_PATHS[path]
        if not key_ok:
            answer = self._error("unauthorized", request_faults)
            return self._reject(path, answer, now, request_faults, taskId=task_id)
        if not task_id:
            answer = self._error("missing_field", request_faults, "taskId")
            return self._reject(path, answer, now, request_faults, taskId=task_id)
        applied = request_faults.names(error=False)
        answer = self._detail(families, task_id, request_faults, now, applied)
        if request_faults.http200 and answer.code != 200:
            applied.append("http200")
        status = None
        if isinstance(answer.data, dict):
            status = answer.data.get("status") or answer.data.get("successFlag")
        self.ledger.poll(
            task_id,
            {
                "taskId": task_id,
                "path": path,
                "code": answer.code,
                "http_status": answer.http_status,
                "status": status,
                "faults": applied,
                **stamp(now),
            },
        )
        if answer.code != 200:
            self._reject(path, answer, now, request_faults, taskId=task_id)
        return answer

    def _detail(
        self,
        families: frozenset[str],
        task_id: str,
        request_faults: RequestFaults,
        now: float,
        applied: list[str],
    ) -> Answer:
        if self.dice.roll("poll_error", self._faults.poll_error):
            applied.append("poll_error")
            return self._server_fault("poll_error", request_faults)
        if not self._poll_limit.admit(task_id, now):
            applied.append("limit")
            return self._error("rate_limited", request_faults, headers={"Retry-After": "1"})
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.kind not in families:
                return self._error("not_found", request_faults)
            return Answer(200, "success", payloads.record(task, now, self._url))

    # -- artifacts ------------------------------------------------------------------------
    def _url(self, task: Task, name: str, route: Route, channel: Channel) -> str:
        """A signed URL for artifact ``name`` (called with the lock held)."""
        now = self.clock()
        if channel == "callback":
            expired = self.dice.roll("expire", self._faults.expire)
        else:  # record-info: only the first hand-out of an artifact may come expired
            key = f"{route}:{name}"
            expired = key not in task.handed_out and self.dice.roll("expire", self._faults.expire)
            task.handed_out.add(key)
        info = self._artifact_info.get(name)
        if info is None:
            info = self._artifact_info[name] = describe(name, task.task_id)
        self.ledger.artifact(name, info, expired=expired)
        ttl_s = self.config.effective_url_ttl_s
        return signed_url(self._signer, self.base_url, route, name, now, ttl_s, expired=expired)

    def artifact(
        self,
        route: str,
        segment: str,
        expires: str | None,
        sig: str | None,
        range_header: str | None,
    ) -> ArtifactResponse:
        """Serve one artifact download (GET/HEAD ``/files|/cdn|/stream/<segment>``)."""
        now = self.clock()
        name = f"{segment}.mp3" if route == "stream" else segment
        check = self._signer.check(f"/{route}/{segment}", expires, sig, now)
        with self._lock:
            known = name in self._artifact_info
        if check != "ok" or not known or not is_known_extension(name):
            self.ledger.download(name, served=False)
            if check == "expired":
                return xml_error(403, "AccessDenied", "Request has expired")
            if check == "bad_signature":
                return xml_error(403, "AccessDenied", "Signature does not match")
            return xml_error(404, "NoSuchKey", "The specified key does not exist.")
        self.ledger.download(name, served=True)
        return serve(name, range_header)

    # -- ledger ---------------------------------------------------------------------------
    def ledger_snapshot(self) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            tasks = list(self._tasks.values())
            balance = self._credit_start - self._spent + self._refunded(now)
            return snapshot(
                self.ledger,
                tasks,
                now,
                config={
                    "profile": self.profile.name,
                    "time_scale": self.config.time_scale,
                    "seed": self.config.seed,
                    "faults": self._faults.to_spec(),
                    "url_ttl_s": self.config.effective_url_ttl_s,
                    "signed_callbacks": self.config.hmac_key is not None,
                },
                credits={"start": self.config.credits, "balance": balance},
            )
