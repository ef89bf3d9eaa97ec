"""The Suno-style API (sunoapi.org, kie.ai) behind :class:`~orchestrator.providers.base.Provider`.

I/O happens only here, through the injected ``httpx.Client``. Foreign errors are translated
at this boundary (``raise ... from exc``)::

    submit (POST the kind's submit path, providers/endpoints.py)
      the request cannot be built (params JSON cannot encode: NaN, ...)
                                         nothing sent                    -> UpstreamRejected
      request never reached the server   ConnectError, ConnectTimeout, PoolTimeout,
                                         proxy / local protocol errors   -> UpstreamUnavailable
      request may have been received     ReadTimeout, WriteTimeout, ReadError, WriteError,
                                         RemoteProtocolError, other      -> UpstreamAmbiguous
                                                                            (outage)
      HTTP 2xx, body not an envelope, or code 200 without data.taskId   -> UpstreamAmbiguous
      HTTP 502/504/520/524 without an envelope (a gateway gave up
      waiting for the origin)                                            -> UpstreamAmbiguous
                                                                            (outage)
      envelope code (or bare HTTP status) per the profile table:
        success -> taskId; rate limited -> UpstreamRateLimited(retry_after);
        retryable (5xx, 455 maintenance, 408) -> UpstreamUnavailable; final -> UpstreamRejected

    fetch (GET the kind's detail path ?taskId=)
      any transport error                                 -> UpstreamUnavailable
      HTTP 404, code 404, "not found" msg, code 200 + null data (unknown task)
                                                          -> UpstreamTransient(code=404)
      auth (code 401, HTTP 401/403)                       -> UpstreamRejected
      rate limited                                        -> UpstreamRateLimited
      retryable (5xx, 455 maintenance, 408)               -> UpstreamUnavailable
      any other error code                                -> UpstreamTransient
      garbage (not strict JSON, not an envelope, wrong shape, unknown status)
                                                          -> UpstreamProtocolError

Only :class:`UpstreamUnavailable` and an ambiguous timeout or reset carry ``outage``: the
circuit breaker counts nothing else (an upstream that answers "not found yet" or garbage is
up). Bodies are parsed as strict JSON (``NaN``/``Infinity`` refused), so nothing the project
stores or prints later can be non-standard JSON.

The API key goes only into the ``Authorization`` header: never into a message or a repr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

import httpx

from orchestrator.clock import utcnow
from orchestrator.exceptions import (
    CallbackRejected,
    UpstreamAmbiguous,
    UpstreamOutOfCredits,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTransient,
    UpstreamUnavailable,
)
from orchestrator.jsonvalues import dumps_body, is_storable_word, loads_strict
from orchestrator.kinds import get_kind
from orchestrator.metrics import METRICS
from orchestrator.observations import UpstreamReport
from orchestrator.providers import normalise
from orchestrator.providers.endpoints import CREDIT_PATH, endpoints_for
from orchestrator.providers.normalise import CODE_RANGE, ShapeError, clip
from orchestrator.providers.profiles import Outcome, Profile
from orchestrator.providers.timestamps import parse_retry_after

#: transport errors raised before any byte of the request can have been processed
_NEVER_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
#: bare HTTP statuses (no envelope) that a gateway returns after forwarding the request
_GATEWAY_GAVE_UP = frozenset({502, 504, 520, 524})
#: envelope messages that say the task is unknown to the upstream
_UNKNOWN_TASK = re.compile(
    r"not\s*found|not\s*exist|no\s+(such\s+)?(record|task)|unknown\s+task|record\s+is\s+empty",
    re.IGNORECASE,
)


class SunoProvider:
    """One profile of the Suno-style API over an injected ``httpx.Client``."""

    #: the profile name ("sunoapi" | "kie"), as the Provider protocol wants it
    profile: str

    def __init__(
        self,
        client: httpx.Client,
        profile: Profile,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 30.0,
    ) -> None:
        self.profile = profile.name
        self.profile_config = profile
        self.base_url = (base_url or profile.default_base_url).rstrip("/")
        self.timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._client = client
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"SunoProvider(profile={self.profile!r}, base_url={self.base_url!r})"

    # --- Provider ----------------------------------------------------------------------------

    def submit(self, kind: str, params: Mapping[str, Any], callback_url: str) -> str:
        with METRICS.upstream(endpoints_for(get_kind(kind).name).submit):
            return self._submit(kind, params, callback_url)

    def fetch(self, kind: str, task_id: str) -> UpstreamReport:
        with METRICS.upstream(endpoints_for(get_kind(kind).name).detail):
            return self._fetch(kind, task_id)

    def credits(self) -> int:
        with METRICS.upstream(CREDIT_PATH):
            return self._credits()

    def _submit(self, kind: str, params: Mapping[str, Any], callback_url: str) -> str:
        spec = get_kind(kind)
        where = f"{self.profile} submit {spec.name}"
        try:
            request = self._client.build_request(
                "POST",
                self.base_url + endpoints_for(spec.name).submit,
                content=dumps_body({**params, "callBackUrl": callback_url}),
                headers={**self._headers(), "Content-Type": "application/json"},
                timeout=self._timeout,
            )
        except Exception as exc:  # nothing left this process: a final, explained failure
            raise UpstreamRejected(
                f"{where}: request not sent, it cannot be built ({self._describe(exc)})"
            ) from exc
        try:
            response = self._client.send(request)
        except _NEVER_SENT as exc:
            raise UpstreamUnavailable(
                f"{where}: request not delivered ({self._describe(exc)})"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamAmbiguous(
                f"{where}: no answer after sending ({self._describe(exc)}); "
                "the task may have been created",
                outage=True,
            ) from exc

        http = response.status_code
        envelope = _envelope(response)
        if envelope is not None:
            code = envelope["code"]
            if self.profile_config.outcome(code) is not Outcome.SUCCESS:
                self._raise_for_code(where, code, envelope.get("msg"), response)
            task_id = _task_id(envelope.get("data"))
            if task_id is not None:
                return task_id
            if response.is_success:
                raise UpstreamAmbiguous(
                    f"{where}: code {code} without data.taskId; the task may have been created",
                    code=code,
                    http_status=http,
                )
            # a success code without a taskId inside an HTTP error: go by the HTTP status
        if response.is_success:
            raise UpstreamAmbiguous(
                f"{where}: HTTP {http} with a body that is not an envelope; "
                "the task may have been created",
                http_status=http,
            )
        if http in _GATEWAY_GAVE_UP:
            raise UpstreamAmbiguous(
                f"{where}: HTTP {http} from a gateway; the task may have been created",
                http_status=http,
                outage=True,
            )
        msg = envelope.get("msg") if envelope is not None else None
        self._raise_for_code(where, http, msg, response, bare_http=True)

    def _fetch(self, kind: str, task_id: str) -> UpstreamReport:
        spec = get_kind(kind)
        where = f"{self.profile} fetch {spec.name}"
        try:
            response = self._client.get(
                self.base_url + endpoints_for(spec.name).detail,
                params={"taskId": task_id},
                headers=self._headers(),
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{where}: {self._describe(exc)}") from exc

        http = response.status_code
        if http == 404:
            raise UpstreamTransient(
                f"{where}: HTTP 404, task unknown (yet)", code=404, http_status=http
            )
        envelope = self._get_envelope(where, response)

        code = envelope["code"]
        msg = envelope.get("msg")
        data = envelope.get("data")
        outcome = self.profile_config.outcome(code)
        if outcome is Outcome.SUCCESS and data is None:
            raise UpstreamTransient(
                f"{where}: code {code} with no data, task unknown (yet)",
                code=404,
                http_status=http,
            )
        if outcome is not Outcome.SUCCESS:
            self._raise_for_poll_code(where, code, msg, response)
        if not isinstance(data, Mapping):
            raise UpstreamProtocolError(f"{where}: data must be an object", http_status=http)
        try:
            if spec.family == "mp4":
                return normalise.mp4_record_report(data, task_id, spec.needs)
            if spec.family == "lyrics":
                return normalise.lyrics_record_report(data, task_id)
            return normalise.music_record_report(data, task_id)
        except ShapeError as exc:
            raise UpstreamProtocolError(f"{where}: {exc}", http_status=http) from exc

    def _credits(self) -> int:
        where = f"{self.profile} credit"
        try:
            response = self._client.get(
                self.base_url + CREDIT_PATH, headers=self._headers(), timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{where}: {self._describe(exc)}") from exc
        envelope = self._get_envelope(where, response)
        code = envelope["code"]
        if self.profile_config.outcome(code) is not Outcome.SUCCESS:
            self._raise_for_poll_code(where, code, envelope.get("msg"), response)
        data = envelope.get("data")
        if isinstance(data, Mapping):  # some pages wrap it: {"credits": N}
            data = data.get("credits", data.get("credit"))
        if isinstance(data, bool) or not isinstance(data, int | float) or data != data:
            raise UpstreamProtocolError(f"{where}: data must be a number of credits")
        return int(data)

    def parse_callback(self, kind: str, body: Mapping[str, Any]) -> UpstreamReport:
        spec = get_kind(kind)
        try:
            if spec.family == "mp4":
                return normalise.mp4_callback_report(body, spec.needs)
            if spec.family == "lyrics":
                return normalise.lyrics_callback_report(body)
            return normalise.music_callback_report(body)
        except ShapeError as exc:
            raise CallbackRejected(f"{spec.name} callback refused: {exc}") from exc

    # --- helpers -----------------------------------------------------------------------------

    def _get_envelope(self, where: str, response: httpx.Response) -> Mapping[str, Any]:
        """A GET's envelope, or what its absence means (garbage, or a bare HTTP error)."""
        envelope = _envelope(response)
        if envelope is not None:
            return envelope
        http = response.status_code
        if response.is_success:
            raise UpstreamProtocolError(
                f"{where}: HTTP {http} with a body that is not an envelope", http_status=http
            )
        self._raise_for_poll_code(where, http, None, response, bare_http=True)

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        user_agent = self.profile_config.user_agent()
        if user_agent is not None:
            headers["User-Agent"] = user_agent
        return headers

    def _scrub(self, text: str) -> str:
        """``text`` without the API key (upstreams sometimes echo what they were sent)."""
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text

    def _describe(self, exc: Exception) -> str:
        detail = clip(self._scrub(str(exc)), 120)
        name = type(exc).__name__
        return f"{name}: {detail}" if detail else name

    def _message(self, where: str, code: int, msg: object, bare_http: bool) -> str:
        label = f"HTTP {code}" if bare_http else f"code {code}"
        text = f"{where}: {label} ({self.profile_config.reason(code)})"
        upstream = clip(self._scrub(msg)) if isinstance(msg, str) else None
        if upstream:
            text += f": {upstream}"
        return text

    def _raise_for_code(
        self,
        where: str,
        code: int,
        msg: object,
        response: httpx.Response,
        *,
        bare_http: bool = False,
    ) -> NoReturn:
        """Raise what a submit's non-success ``code`` (envelope or bare HTTP) means."""
        message = self._message(where, code, msg, bare_http)
        http = response.status_code
        envelope_code = None if bare_http else code
        outcome = _http_outcome(code) if bare_http else self.profile_config.outcome(code)
        if outcome is Outcome.RATE_LIMITED:
            raise UpstreamRateLimited(
                message,
                code=envelope_code,
                http_status=http,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), utcnow()),
            )
        if outcome is Outcome.RETRYABLE:
            raise UpstreamUnavailable(message, code=envelope_code, http_status=http)
        if outcome is Outcome.SUCCESS:  # pragma: no cover - callers handle success first
            raise UpstreamProtocolError(message, code=envelope_code, http_status=http)
        if outcome is Outcome.NO_CREDITS:
            raise UpstreamOutOfCredits(message, code=envelope_code, http_status=http)
        raise UpstreamRejected(message, code=envelope_code, http_status=http)

    def _raise_for_poll_code(
        self,
        where: str,
        code: int,
        msg: object,
        response: httpx.Response,
        *,
        bare_http: bool = False,
    ) -> NoReturn:
        """Raise what a poll's non-success ``code`` means: only auth is final for a poll."""
        http = response.status_code
        auth = code in (401, 403) if bare_http else code in self.profile_config.auth_codes
        if auth:
            message = self._message(where, code, msg, bare_http)
            raise UpstreamRejected(message, code=None if bare_http else code, http_status=http)
        if code == 404 or (isinstance(msg, str) and _UNKNOWN_TASK.search(msg[:500])):
            message = self._message(where, code, msg, bare_http)
            raise UpstreamTransient(f"{message} (task unknown yet)", code=404, http_status=http)
        outcome = _http_outcome(code) if bare_http else self.profile_config.outcome(code)
        if outcome in (Outcome.RATE_LIMITED, Outcome.RETRYABLE):
            self._raise_for_code(where, code, msg, response, bare_http=bare_http)
        message = self._message(where, code, msg, bare_http)
        raise UpstreamTransient(message, code=None if bare_http else code, http_status=http)


def _http_outcome(status: int) -> Outcome:
    """What a bare HTTP status (no envelope) means."""
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (408, 425) or 500 <= status <= 599:
        return Outcome.RETRYABLE
    if 200 <= status <= 299:
        return Outcome.SUCCESS
    return Outcome.FINAL


def _envelope(response: httpx.Response) -> dict[str, Any] | None:
    """The ``{"code": int, "msg": ..., "data": ...}`` envelope, or None if there is none."""
    try:
        body = loads_strict(response.content)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    if isinstance(code, bool) or not isinstance(code, int) or code not in CODE_RANGE:
        return None
    return body


def _task_id(data: object) -> str | None:
    if not isinstance(data, Mapping):
        return None
    task_id = data.get("taskId")
    if isinstance(task_id, str) and task_id.strip() and len(task_id) <= 200:
        task_id = task_id.strip()
        # an id with control characters or broken Unicode could not be stored or sent back
        return task_id if is_storable_word(task_id) else None
    return None
