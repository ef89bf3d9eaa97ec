"""The daemon: builds the parts from settings, ticks them with APScheduler, serves callbacks.

APScheduler 3's BackgroundScheduler is the clock: it ticks the submitter, poller, downloader
and sweeper every ``polling.tick_s``. The database holds every job and its next due time, so
the scheduler itself holds no state a restart would lose. A callback (or an expired URL)
wakes the poller for one job at once; a job that succeeds wakes the downloader at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from apscheduler.schedulers.background import BackgroundScheduler

from orchestrator import __version__
from orchestrator.clock import DatabaseClock, utcnow
from orchestrator.config import Settings, parse_listen
from orchestrator.daemon.breaker import CircuitBreaker, SharedBreaker
from orchestrator.daemon.credits import CreditGuard
from orchestrator.daemon.downloader import Downloader
from orchestrator.daemon.learner import Learner
from orchestrator.daemon.notifier import Notifier, http_client, load_secrets
from orchestrator.daemon.pipeline_watch import PipelineWatch
from orchestrator.daemon.poller import Poller
from orchestrator.daemon.ratelimit import SharedTokenBucket, SharedWindow
from orchestrator.daemon.releaser import Releaser
from orchestrator.daemon.signals import stop_on_signals
from orchestrator.daemon.submitter import Submitter
from orchestrator.daemon.sweeper import Sweeper
from orchestrator.daemon.systemd import notify as sd_notify
from orchestrator.daemon.systemd import watchdog_interval_s
from orchestrator.domain import Job, NewNotification
from orchestrator.downloads import AddressPolicy, Fetcher
from orchestrator.exceptions import ConfigError, InvalidParams, JobKeyConflict
from orchestrator.groupcommit import GroupCommitter
from orchestrator.logs import get_logger, register_secret
from orchestrator.metrics import METRICS
from orchestrator.notifications import outbox_for
from orchestrator.pipelines import Spec
from orchestrator.providers import make_provider
from orchestrator.providers.base import Provider
from orchestrator.reconciler import Outcome, Reconciler
from orchestrator.schedule import Timeline
from orchestrator.service import JobService
from orchestrator.states import FINISHED, JobState
from orchestrator.stores import open_store
from orchestrator.stores.base import Store
from orchestrator.stores.wakes import POLL as POLL_WAKE
from orchestrator.stores.wakes import PostgresWakes
from orchestrator.web.app import WebContext, create_app
from orchestrator.web.callback_auth import CallbackAuth
from orchestrator.web.server import BackgroundServer

log = get_logger("orchestrator.daemon")

USER_AGENT = (
    f"Mozilla/5.0 (compatible; orchestrator/{__version__}; +https://example.invalid/orchestrator)"
)


def account_id(api_key: str) -> str:
    """The provider account a key belongs to, as stored: a digest, never the key."""
    import hashlib

    return hashlib.sha256(b"orchestrator-account:" + api_key.encode()).hexdigest()[:16]


def _breaker_health(breaker: CircuitBreaker) -> dict[str, Any]:
    """What /healthz says about the upstream: the circuit breaker's state."""
    return {"breaker": breaker.state().value, "breaker_open": breaker.is_open}


@dataclass
class Parts:
    store: Store
    provider: Provider
    reconciler: Reconciler
    service: JobService
    submitter: Submitter
    poller: Poller
    downloader: Downloader
    sweeper: Sweeper
    learner: Learner
    releaser: Releaser
    notifier: Notifier
    pipeline_watch: PipelineWatch


#: how often the learned durations are re-read (sooner with a shorter poll interval)
LEARN_EVERY_S = 5.0
#: /readyz: a loop that has not ticked for this long (or 10 ticks) makes the daemon not ready
READY_TICK_S = 10.0
#: notifications sent at once (a receiver that hangs holds one sender up to 15 s)
NOTIFY_CONCURRENCY = 4


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] = utcnow,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        #: set by a stop request; may be set before the daemon even starts (SIGTERM early)
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._store = store
        self._scheduler: Any = None
        self._server: BackgroundServer | None = None
        self._ingest: GroupCommitter | None = None
        self._wakes: PostgresWakes | None = None
        self._clients: list[httpx.Client] = []
        self._pools: list[ThreadPoolExecutor] = []
        self.parts: Parts | None = None
        #: when each loop last ticked (monotonic seconds), for /readyz
        self._ticks: dict[str, float] = {}
        self._started_at = time.monotonic()
        self.callback_port: int | None = None

    # --- assembly --------------------------------------------------------------------------

    def _build(self) -> Parts:
        s = self.settings
        api_key = s.api_key()
        register_secret(api_key)
        store = self._store or open_store(s.database_url)
        store.node = self.owner  # every event this daemon writes says so
        if self.clock is utcnow and store.database_now() is not None:
            # several daemons on one PostgreSQL: one clock for leases, due times, deadlines
            self.clock = DatabaseClock(store.database_now)
            log.info("clock_from_database", offset_s=self.clock.offset.total_seconds())
        policy = s.policy()
        upstream = httpx.Client(
            timeout=httpx.Timeout(s.provider.timeout_s, connect=min(10.0, s.provider.timeout_s)),
            limits=httpx.Limits(
                max_connections=s.polling.concurrency + 4,
                max_keepalive_connections=s.polling.concurrency + 4,
            ),
            headers={"User-Agent": USER_AGENT},
        )
        downloads = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})
        self._clients += [upstream, downloads]
        provider = make_provider(
            s.provider.profile, upstream, base_url=s.provider.base_url, api_key=api_key
        )
        poll_pool = ThreadPoolExecutor(s.polling.concurrency, thread_name_prefix="poll")
        download_pool = ThreadPoolExecutor(s.downloads.concurrency, thread_name_prefix="download")
        self._pools += [poll_pool, download_pool]

        holder: dict[str, Any] = {}

        def wake_poller(job_id: int) -> None:
            holder["poller"].poll_soon(job_id)

        def on_transition(outcome: Outcome) -> None:
            if outcome.changed_state:
                record_transition(outcome, self.clock())
            if outcome.changed_state and outcome.job.state == JobState.SUCCEEDED:
                holder["downloader"].download_soon(outcome.job.id)
            if outcome.changed_state and outcome.job.state in FINISHED and "releaser" in holder:
                holder["releaser"].wake()  # a parent finished: its children may go

        targets = s.notify
        secrets = load_secrets(targets)  # a missing or malformed secret stops the start

        def outbox(before: Job, after: Job, now: datetime) -> list[NewNotification]:
            return outbox_for(targets, before, after, now)

        reconciler = Reconciler(
            store,
            policy,
            on_wake=wake_poller,
            on_transition=on_transition,
            outbox=outbox if targets else None,
        )
        # one writer for callbacks and poll results: one fsync per batch (groupcommit.py)
        self._ingest = GroupCommitter(reconciler)
        lease = s.daemon.lease_s
        # one daemon seeing the upstream down pauses every daemon on the database
        breaker = SharedBreaker(
            s.provider.base_url,
            store,
            s.provider.breaker_threshold,
            s.provider.breaker_cooldown_s,
            wall=lambda: self.clock().timestamp(),
        )
        METRICS.breaker_open.set_function(lambda: 1.0 if breaker.is_open else 0.0)
        METRICS.jobs.count = lambda: [
            (state.value, kind, n) for state, kind, n in store.count_by_state_and_kind()
        ]
        submitter = Submitter(
            store,
            reconciler,
            provider,
            owner=self.owner,
            public_url=s.callbacks.public_url,
            # the account's submit limit, shared by every daemon on the database
            limiter=SharedWindow(
                store,
                f"submit:{account_id(api_key)}",
                s.provider.submit_rate,
                s.provider.submit_window_s,
                self.clock,
            ),
            breaker=breaker,
            lease_s=lease,
            clock=self.clock,
            stop=self.stop_event,
            credits=CreditGuard(store, provider, s.credit_rules(), clock=self.clock),
        )
        # several daemons on one PostgreSQL: a callback for a job another daemon holds is
        # handed to them (LISTEN/NOTIFY); the database's due time stays the fallback
        self._wakes = wakes = store.wakes(self.owner)

        def relay(job_id: int) -> None:
            if wakes is not None and wakes.publish(POLL_WAKE, job_id):
                METRICS.wakes.labels("sent").inc()

        poller = Poller(
            store,
            reconciler,
            provider,
            owner=self.owner,
            executor=poll_pool,
            concurrency=s.polling.concurrency,
            # the detail-query budget is the account's: shared by every daemon
            bucket=SharedTokenBucket(
                store, f"polls:{account_id(api_key)}", s.provider.poll_rate_per_s, self.clock
            ),
            breaker=breaker,
            lease_s=lease,
            clock=self.clock,
            stop=self.stop_event,
            batch=s.polling.batch,
            committer=self._ingest,
            relay=relay if wakes is not None else None,
        )
        fetcher = Fetcher(
            downloads,
            AddressPolicy(s.downloads.allowed_networks),
            max_bytes=s.downloads.max_bytes,
            timeout_s=s.downloads.timeout_s,
            max_redirects=s.downloads.max_redirects,
        )
        downloader = Downloader(
            store,
            reconciler,
            fetcher,
            artifacts_dir=s.artifacts_path,
            owner=self.owner,
            executor=download_pool,
            concurrency=s.downloads.concurrency,
            lease_s=lease,  # renewed per file and while bytes arrive (a heartbeat)
            clock=self.clock,
            stop=self.stop_event,
        )
        holder["poller"], holder["downloader"] = poller, downloader
        sweeper = Sweeper(
            store,
            reconciler,
            policy,
            owner=self.owner,
            lease_s=lease,
            clock=self.clock,
            stop=self.stop_event,
        )
        service = JobService(
            store,
            provider=s.provider.profile,
            policy=policy,
            reconciler=reconciler,
            clock=self.clock,
        )
        learner = Learner(
            store, reconciler, history=s.polling.history, half_life=s.polling.half_life
        )
        releaser = holder["releaser"] = Releaser(
            store, reconciler, clock=self.clock, stop=self.stop_event
        )
        notify_client = http_client()
        notify_pool = ThreadPoolExecutor(NOTIFY_CONCURRENCY, thread_name_prefix="notify")
        self._clients.append(notify_client)
        self._pools.append(notify_pool)
        notifier = Notifier(
            store,
            targets,
            secrets,
            client=notify_client,
            executor=notify_pool,
            concurrency=NOTIFY_CONCURRENCY,
            owner=self.owner,
            lease_s=lease,
            clock=self.clock,
            stop=self.stop_event,
        )
        return Parts(
            store,
            provider,
            reconciler,
            service,
            submitter,
            poller,
            downloader,
            sweeper,
            learner,
            releaser,
            notifier,
            PipelineWatch(store, targets, clock=self.clock, stop=self.stop_event),
        )

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        self.parts = parts = self._build()
        if self._wakes is not None:
            poller = parts.poller

            def heard(what: str, job_id: int) -> None:
                METRICS.wakes.labels("heard").inc()
                if what == POLL_WAKE:
                    poller.poll_soon(job_id, relayed=True)

            self._wakes.listen(heard)
        self.enqueue_config_jobs()
        assert self._ingest is not None
        self._ingest.start()
        if s.callbacks.enabled:
            host, port = parse_listen(s.callbacks.listen)
            app = create_app(
                WebContext(
                    store=parts.store,
                    reconciler=parts.reconciler,
                    provider=parts.provider,
                    service=parts.service,
                    clock=self.clock,
                    mode=s.callbacks.mode,
                    max_body_bytes=s.callbacks.max_body_bytes,
                    auth=CallbackAuth.from_settings(s.callbacks, store=parts.store),
                    ingest=self._ingest,
                    api_token=api_token(s.callbacks.api_token_env),
                    upstream_health=lambda: _breaker_health(parts.poller.breaker),
                    readiness=self.readiness,
                    artifacts_dir=s.artifacts_path,
                    slow_after_s=s.polling.deadline_s / 2,
                )
            )
            try:
                self._server = BackgroundServer(
                    app,
                    host,
                    port,
                    threads=s.callbacks.threads,
                    # the app decides whom to believe (callback_auth, the job API guard)
                    keep_proxy_headers=True,
                )
            except OSError as exc:
                raise ConfigError(
                    f"[callbacks] listen {s.callbacks.listen}: cannot listen: {exc.strerror}"
                ) from exc
            self._server.start()
            self.callback_port = self._server.port
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler = BackgroundScheduler(timezone="UTC")
        tick = s.polling.tick_s
        self._started_at = time.monotonic()
        for name, fn, every in (
            ("releaser", parts.releaser.tick, tick),
            ("notifier", parts.notifier.tick, tick),
            ("pipeline_watch", parts.pipeline_watch.tick, max(tick, 2.0)),
            ("submitter", parts.submitter.tick, tick),
            ("poller", parts.poller.tick, tick),
            ("downloader", parts.downloader.tick, tick),
            ("sweeper", parts.sweeper.tick, max(tick, 1.0)),
            ("learner", parts.learner.tick, min(LEARN_EVERY_S, s.polling.interval_s)),
        ):
            scheduler.add_job(
                _guarded(name, fn, self._ticks),
                "interval",
                seconds=every,
                id=name,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(scheduler.timezone),
            )
        pet = watchdog_interval_s()
        if pet is not None:
            scheduler.add_job(
                _guarded("watchdog", self._pet_watchdog),
                "interval",
                seconds=pet,
                id="watchdog",
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self._scheduler = scheduler
        sd_notify("READY=1")
        log.info(
            "daemon_started",
            owner=self.owner,
            profile=s.provider.profile,
            upstream=s.provider.base_url,
            callbacks=f"{s.callbacks.listen} ({s.callbacks.mode})" if s.callbacks.enabled else None,
            database=_safe_db(s.database_url),
            poll_interval_s=s.polling.interval_s,
        )

    def _pet_watchdog(self) -> None:
        """WATCHDOG=1 only while the daemon is ready: a wedged daemon gets restarted."""
        ready, _checks = self.readiness()
        if ready:
            sd_notify("WATCHDOG=1")

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """/readyz beyond the database: the loops tick, and the daemon is not stopping."""
        now = time.monotonic()
        bound = max(READY_TICK_S, 10 * self.settings.polling.tick_s)
        checks: dict[str, Any] = {"stopping": self.stop_event.is_set()}
        ready = not self.stop_event.is_set()
        for loop in ("submitter", "poller", "downloader"):
            last = self._ticks.get(loop, self._started_at)
            age = now - last
            checks[f"{loop}_tick_age_s"] = round(age, 3)
            ready = ready and age <= bound
        checks["tick_bound_s"] = bound
        return ready, checks

    def enqueue_config_jobs(self) -> list[Job]:
        """The [[jobs]] of the config, recorded by key: idempotent across restarts."""
        assert self.parts is not None
        specs = [
            Spec(entry.key, entry.kind, entry.params, entry.after, entry.for_each)
            for entry in self.settings.jobs
        ]
        try:
            recorded = self.parts.service.submit_all(specs)
        except JobKeyConflict as exc:
            raise ConfigError(f"[[jobs]]: {exc} (give the changed job a new key)") from exc
        except InvalidParams as exc:
            raise ConfigError(f"[[jobs]]: {exc}") from exc
        for job, created in recorded:
            if created:
                log.info("job_enqueued", key=job.key, kind=job.kind, source="config")
        return [job for job, _ in recorded]

    def stop(self) -> None:
        """Stop claiming, let in-flight work finish within the grace period, release leases."""
        if self.stop_event.is_set() and self._scheduler is None:
            return
        self.stop_event.set()
        sd_notify("STOPPING=1")
        grace = self.settings.daemon.shutdown_grace_s
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

        def drain() -> None:
            for pool in self._pools:
                pool.shutdown(wait=True)

        waiter = threading.Thread(target=drain)
        waiter.start()
        waiter.join(grace)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._ingest is not None:
            self._ingest.stop()  # commits what is queued: every 2xx given is stored
            self._ingest = None
        if self._wakes is not None:
            self._wakes.close()
            self._wakes = None
        released = 0
        if self.parts is not None:
            released = self.parts.store.release_all(self.owner)
        for client in self._clients:
            client.close()
        if self.parts is not None and self._store is None:
            self.parts.store.close()
        log.info("daemon_stopped", owner=self.owner, released_leases=released)

    def run_forever(self) -> int:
        """`orchestrator run`: until SIGTERM or SIGINT (also one that came during start-up)."""
        restore = stop_on_signals(self.stop_event)
        try:
            if self.stop_event.is_set():
                log.info("stopped_before_start")
                return 0
            self.start()
            while not self.stop_event.wait(1.0):
                pass
            self.stop()
        except BaseException:
            self.stop()
            raise
        finally:
            restore()
        return 0


def api_token(variable: str) -> str | None:
    """The job API's bearer token from the named environment variable (never the file)."""
    if not variable:
        return None
    token = os.environ.get(variable, "").strip()
    if len(token) < 16:
        raise ConfigError(
            f"[callbacks] api_token_env: environment variable {variable} must hold a token of "
            "at least 16 characters"
        )
    register_secret(token)
    return token


def record_transition(outcome: Outcome, now: datetime) -> None:
    """The metrics of one state change: the transition, and at success how long after the
    upstream could have finished the daemon saw it (docs/operations.md)."""
    job = outcome.job
    METRICS.transitions.labels(job.kind, outcome.from_state.value, job.state.value).inc()
    if job.state != JobState.SUCCEEDED or job.accepted_at is None or not job.timeline:
        return
    bracket = Timeline.from_json(job.timeline).stages.get("SUCCESS")
    if bracket is not None:
        seen = (now - job.accepted_at).total_seconds()
        METRICS.detection.observe(max(0.0, seen - bracket[0]))


def _guarded(
    name: str, fn: Callable[[], object], ticks: dict[str, float] | None = None
) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("tick_failed", loop=name)  # a failing loop does not count as ticking
        else:
            if ticks is not None:
                ticks[name] = time.monotonic()

    return run


def _safe_db(url: str) -> str:
    """The database URL without a password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable url)"
