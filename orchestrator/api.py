"""A small Python API for scripts: submit, get, list, wait (and the operator actions).

    from orchestrator.api import Orchestrator

    with Orchestrator("config.toml") as orc:
        job = orc.submit("generate_music", {"customMode": False, "instrumental": True,
                                            "model": "V4_5", "prompt": "rain on a tin roof"})
        done = orc.wait(job.key, timeout=600)
        print(done.state, [a.path for a in done.artifacts])

It writes to the same database as the daemon; the daemon (``orchestrator run``) does the work.
"""

from __future__ import annotations

import builtins
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator.config import Settings, load_settings
from orchestrator.daemon.notifier import Answer
from orchestrator.domain import Event, Job, Notification, NotificationState
from orchestrator.exceptions import UsageError
from orchestrator.notifications import PING, Target, body_of, new_webhook_id
from orchestrator.observations import Resolution
from orchestrator.service import JobDetail, JobService, children_index, tree_json
from orchestrator.states import FINISHED, JobState
from orchestrator.stores import open_store
from orchestrator.stores.base import Store


@dataclass(frozen=True)
class JobEvent:
    """One transition, as ``Orchestrator.events`` yields it."""

    id: int  #: the event's id: pass it back as ``since`` to resume after it
    at: datetime
    key: str
    kind: str
    event: Event
    state: JobState | None  #: the state the job moved to


class Orchestrator:
    def __init__(
        self,
        config: str | Path | None = None,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or load_settings(config)
        self._own_store = store is None
        self.store = store or open_store(self.settings.database_url)
        if self._own_store:  # what this process records (an operator's retry, a submit)
            self.store.node = f"cli:{socket.gethostname()}:{os.getpid()}"
        self.service = JobService(
            self.store, provider=self.settings.provider.profile, policy=self.settings.policy()
        )

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        after: str | Sequence[str] | None = None,
        for_each: str | None = None,
    ) -> Job:
        """Record a job (idempotent by key) and return it. With ``after`` it waits for those
        jobs and its params may refer to their results (``${song.tracks[0].id}``);
        ``for_each="song.tracks"`` makes one child per track (docs/pipelines.md)."""
        job, _created = self.service.submit(kind, params or {}, key, after=after, for_each=for_each)
        return job

    def get(self, key: str) -> Job:
        return self.service.get(key)

    def detail(self, key: str) -> JobDetail:
        return self.service.detail(key)

    def list(self, *, state: str | JobState | None = None, kind: str | None = None) -> list[Job]:
        states = [JobState(state)] if state else None
        return self.service.list(states=states, kind=kind)

    def status_json(
        self, *, state: str | JobState | None = None, kind: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """What ``orchestrator status --json`` prints: the jobs (filtered) as job JSON, each
        with its children (from every job, not only the listed ones) and its ``held``."""
        jobs = self.list(state=state, kind=kind)
        index = children_index(self.list() if state or kind else jobs)
        hold = self.service.hold()
        return [tree_json(job, index, hold) for job in jobs]

    def wait(
        self,
        key: str,
        *,
        timeout: float | None = None,
        interval: float = 0.5,
        until: frozenset[JobState] = FINISHED,
        on_change: Callable[[Job], None] | None = None,
    ) -> Job:
        """Block until the job is in one of ``until`` (finished, by default); returns it.

        Raises TimeoutError after ``timeout`` seconds. ``on_change`` sees every new state.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: tuple[JobState, str | None, int] | None = None
        while True:
            job = self.service.get(key)
            seen = (job.state, job.upstream_status, sum(a.bytes is not None for a in job.artifacts))
            if seen != last:
                last = seen
                if on_change is not None:
                    on_change(job)
            if job.state in until:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {key!r} is still {job.state.value} after {timeout}s")
            time.sleep(interval)

    def cancel(self, key: str) -> Job:
        return self.service.cancel(key)

    def cancel_tree(self, key: str) -> tuple[Job, ...]:
        """Cancel the job and every job below it that is not finished; returns those."""
        return self.service.cancel_tree(key)

    def children(self, key: str) -> tuple[str, ...]:
        return self.service.detail(key).children

    def retry(self, key: str) -> Job:
        return self.service.retry(key)

    def resolve(self, key: str, action: str, task_id: str | None = None) -> Job:
        return self.service.resolve(key, Resolution(action), task_id)

    # --- notifications and the event feed ---------------------------------------------------

    def notifications(self, *, state: str | None = None) -> Sequence[Notification]:
        states = [NotificationState(state)] if state else None
        return self.store.notifications(states=states)

    def replay(
        self, ids: Sequence[int] = (), *, since: datetime | None = None, dead: bool = False
    ) -> int:
        """Send those notifications again with their own webhook-id; the daemon sends them."""
        return self.service.replay(ids, since=since, dead=dead)

    def enable_target(self, name: str) -> bool:
        return self.service.enable_target(self._target(name).name)

    def test_target(self, name: str) -> Answer:
        """Send a signed ``ping`` to the target now (not through the outbox) and return its
        answer."""
        from orchestrator.clock import utcnow
        from orchestrator.daemon.notifier import deliver, http_client, load_secrets

        target = self._target(name)
        secret = load_secrets((target,)).get(target.name)
        now = utcnow()
        row = Notification(
            id=0,
            webhook_id=new_webhook_id(),
            target=target.name,
            event=PING,
            job_id=None,
            body=body_of(PING, None, now),
            state=NotificationState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        with http_client() as client:
            answer, _took = deliver(client, target, secret, row, utcnow)
        return answer

    def _target(self, name: str) -> Target:
        for target in self.settings.notify:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.settings.notify) or "none configured"
        raise UsageError(f"no [[notify]] target named {name!r} (known: {known})")

    def events(
        self,
        *,
        since: int | datetime | None = None,
        kinds: Sequence[str] | None = None,
        follow: bool = False,
        interval: float = 0.5,
    ) -> Iterator[JobEvent]:
        """Every transition of every job from the event log, oldest first: after event id
        ``since`` (or from time ``since``), only jobs of ``kinds`` when given. With ``follow``
        it keeps waiting for new ones (stop by breaking out of the loop)."""
        after = since if isinstance(since, int) else 0
        keys: dict[int, tuple[str, str]] = {}
        while True:
            batch = self.store.transitions(after, limit=500)
            for event in batch:
                after = event.id
                if isinstance(since, datetime) and event.at < since:
                    continue
                if event.job_id not in keys:
                    job = self.store.get_job(event.job_id)
                    keys[event.job_id] = (job.key, job.kind)
                key, kind = keys[event.job_id]
                if kinds and kind not in kinds:
                    continue
                yield JobEvent(event.id, event.at, key, kind, event, event.to_state)
            if len(batch) < 500:
                if not follow:
                    return
                time.sleep(interval)

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
