"""One exception tree for the whole package.

Foreign exceptions (httpx, SQLAlchemy, tomllib, OS errors) are translated at the boundary
where they occur, with ``raise ... from exc``. Transient and permanent failures are different
classes, so callers decide "retry or give up" by ``except`` clause, never by message.

::

    OrchestratorError
    ├── ConfigError                  bad config file or option (user mistake: clear message, exit 2)
    ├── UsageError                   bad CLI / API input: unknown job key, bad params, key conflict
    │   ├── JobNotFound              no job has the key the user gave
    │   ├── JobKeyConflict           same key, different params
    │   ├── InvalidParams
    │   └── RequestRejected          an HTTP request body is refused (status code + reason)
    ├── InvalidTransition            an operator action not allowed from the job's current state
    ├── StoreError                   the database failed (not a conflict)
    │   ├── StaleJob                 compare-and-set lost: someone else changed the job first
    │   ├── JobIdNotFound            an internal lookup by id found no row (not a user's key)
    │   └── SchemaMismatch           the database's schema is not this code's: behind (run
    │                                `orchestrator db upgrade`) or ahead (newer code wrote it);
    │                                the operator must act (exit 2)
    ├── ObservationError             one observation cannot be folded or stored (data the store
    │                                cannot hold, or a bug): the same will fail again
    ├── UpstreamError                the provider answered badly or not at all (``outage``: it
    │   │                            looks down; only such errors count for the circuit breaker)
    │   ├── UpstreamTransient        retry later; not an outage: "task not found yet", ...
    │   │   ├── UpstreamUnavailable  the upstream is down: transport error, timeout, 5xx,
    │   │   │                        maintenance (``outage`` is true)
    │   │   ├── UpstreamRateLimited  with ``retry_after`` seconds when known (not an outage)
    │   │   └── UpstreamProtocolError  the answer did not parse (garbage, wrong envelope); it
    │   │                            answered, so not an outage
    │   ├── UpstreamRejected         final: auth, validation, conflict, generation failure,
    │   │   │                        or a request that could not be built (never sent)
    │   │   └── UpstreamOutOfCredits  the account cannot pay: nothing was created; the job
    │   │                            waits in `queued` until the balance is back
    │   └── UpstreamAmbiguous        the request may have been received: outcome unknown
    │                                (submit); ``outage`` when it was a timeout or a reset
    ├── CallbackError                an inbound callback is refused (status code + reason)
    │   ├── CallbackNotFound         404: unknown token, writes nothing
    │   ├── CallbackRejected         400/413/415: malformed, oversized, not JSON, wrong schema
    │   └── CallbackUnauthorized     401/403: bad signature, replay, source address refused
    └── DownloadError                fetching an artifact failed
        ├── DownloadTransient        retry later: 5xx, timeout, reset, truncated body
        ├── DownloadExpired          403/404: the URL expired; a fresh poll may give a new one
        └── DownloadRefused          final: SSRF guard, scheme, size cap, content type, redirects
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the package raises on purpose."""


class ConfigError(OrchestratorError):
    """The configuration file or an option is invalid."""


class UsageError(OrchestratorError):
    """A user's request (CLI, API, script) cannot be carried out as asked."""


class JobNotFound(UsageError):
    """No job has that key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no job with key {key!r}")
        self.key = key


class RequestRejected(UsageError):
    """An HTTP request's body is refused: not JSON, too deep, the wrong type (4xx)."""

    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class JobKeyConflict(UsageError):
    """A job with that key exists with different params or kind."""


class InvalidParams(UsageError):
    """The params of a job are not acceptable for its kind."""


class InvalidTransition(OrchestratorError):
    """An operator action that the job's current state does not allow."""


class StoreError(OrchestratorError):
    """The database failed."""


class StaleJob(StoreError):
    """A compare-and-set found the job changed by someone else."""


class SchemaMismatch(StoreError):
    """The database's schema revision is not the one this code runs on (the message says
    which way and what to run)."""


class JobIdNotFound(StoreError):
    """A job looked up by its internal id is not there: a caller's bug or a deleted row,
    never a user's mistake (a user names jobs by key: :class:`JobNotFound`)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class ObservationError(OrchestratorError):
    """Folding or storing one observation failed in a way that retrying cannot fix.

    Raised by the reconciler (``raise ... from exc``) for anything but a database failure:
    the callback endpoint answers 400 instead of a 503 the upstream would retry forever, and
    the poller records a failed poll (which backs off) instead of re-polling once per lease.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpstreamError(OrchestratorError):
    """The upstream answered with an error, or not at all.

    ``outage`` says the upstream looks down or unreachable (a transport error, a timeout, a
    5xx or maintenance answer): the only errors a circuit breaker counts. An answer that
    parsed into an error, or garbage, proves the upstream is up.
    """

    #: the default of ``outage`` for this class
    outage_by_default = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        outage: bool | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.message = message
        self.outage = self.outage_by_default if outage is None else outage


class UpstreamTransient(UpstreamError):
    """Worth retrying later (rate limit, maintenance, 5xx, timeout, "task not found yet")."""


class UpstreamUnavailable(UpstreamTransient):
    """The upstream is down or unreachable: transport error, timeout, 5xx, maintenance."""

    outage_by_default = True


class UpstreamRateLimited(UpstreamTransient):
    """The upstream asked us to slow down."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """Final: retrying the same request will not help (auth, credits, validation, conflict)."""


class UpstreamOutOfCredits(UpstreamRejected):
    """The account's balance does not cover the submit (per profile: 402, or 429 on
    sunoapi.org). Final for this request, not for the job: the credit guard parks the queue."""


class UpstreamAmbiguous(UpstreamError):
    """The request was sent but no answer came back (read timeout, reset): it may have landed.

    For a submit this means "maybe paid for": the job becomes `uncertain`, never resubmitted
    silently. For a poll it is just transient.
    """


class UpstreamProtocolError(UpstreamTransient):
    """The answer did not parse as the documented envelope (transient garbage, not an outage)."""


class CallbackError(OrchestratorError):
    """An inbound callback is refused."""

    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class CallbackNotFound(CallbackError):
    status_code = 404


class CallbackRejected(CallbackError):
    status_code = 400


class CallbackUnauthorized(CallbackError):
    status_code = 401


class DownloadError(OrchestratorError):
    """Fetching an artifact failed."""


class DownloadTransient(DownloadError):
    """Worth retrying later."""


class DownloadExpired(DownloadError):
    """The URL answered 403/404: expired; a fresh poll may give a new URL."""


class DownloadRefused(DownloadError):
    """Final refusal: SSRF guard, scheme, size, content type, redirect cap."""
