"""``pipeline.completed``: told once per pipeline, when its root and every job below it have
completed, to the targets that ask for it.

It reads the transition feed (``Store.transitions``) from a cursor kept in an account record,
so a completion committed just before a crash is still looked at after the restart. Commits
can land out of id order (PostgreSQL assigns ids at insert), so the cursor only moves past
transitions older than :data:`OVERLAP_S`; the newer ones are looked at again on the next
tick. Telling twice is impossible: each row's ``webhook-id`` is made from the root's id and
the target (``msg_pipeline_<id>_<target>``) and the outbox refuses a second one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from orchestrator.domain import Job, NewNotification
from orchestrator.exceptions import StoreError
from orchestrator.logs import get_logger
from orchestrator.notifications import PIPELINE_COMPLETED, Target, body_of
from orchestrator.service import children_index, descendants
from orchestrator.states import JobState
from orchestrator.stores.base import Store

log = get_logger("orchestrator.pipeline_watch")

RECORD: Final = "pipeline-watch"
OVERLAP_S: Final = 60.0
BATCH: Final = 1000


class PipelineWatch:
    def __init__(
        self,
        store: Store,
        targets: tuple[Target, ...],
        *,
        clock: Callable[[], datetime],
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.targets = tuple(t for t in targets if PIPELINE_COMPLETED in t.events)
        self.clock = clock
        self.stop = stop
        #: completions this process has already looked at, inside the overlap window: the
        #: window is read again at each tick, its trees are not
        self._looked: set[int] = set()

    def tick(self) -> int:
        """Tell the pipelines that completed since the cursor. Returns how many were told."""
        if not self.targets or self.stop.is_set():
            return 0
        now = self.clock()
        after = int((self.store.account(RECORD) or {}).get("after", 0))
        feed = self.store.transitions(after, limit=BATCH)
        done = [e for e in feed if e.to_state == JobState.COMPLETED and e.id not in self._looked]
        told = 0
        if done:
            jobs = {job.key: job for job in self.store.list_jobs()}
            by_id = {job.id: job for job in jobs.values()}
            index = children_index(list(jobs.values()))
            roots = {
                root
                for event in done
                if event.job_id in by_id
                for root in _roots(by_id[event.job_id], jobs)
            }
            for root in sorted(roots):
                told += self._tell_if_done(jobs[root], jobs, index, now)
        self._looked.update(e.id for e in done)
        settled = [e.id for e in feed if e.at <= now - timedelta(seconds=OVERLAP_S)]
        if settled and max(settled) > after:
            self.store.set_account(RECORD, {"after": max(settled)}, now)
            self._looked = {n for n in self._looked if n > max(settled)}
        return told

    def _tell_if_done(
        self, root: Job, jobs: dict[str, Job], index: dict[str, list[str]], now: datetime
    ) -> int:
        below = descendants(root.key, index)
        if not below or root.state != JobState.COMPLETED:
            return 0
        if any(jobs[k].state != JobState.COMPLETED for k in below if k in jobs):
            return 0
        told = {n.webhook_id for n in self.store.notifications(job_id=root.id)}
        data = {**root.to_json(), "pipeline": [{"key": k, "kind": jobs[k].kind} for k in below]}
        rows = [
            NewNotification(
                f"msg_pipeline_{root.id}_{target.name}",
                target.name,
                PIPELINE_COMPLETED,
                body_of(PIPELINE_COMPLETED, data, now),
                now,
            )
            for target in self.targets
            if f"msg_pipeline_{root.id}_{target.name}" not in told
        ]
        if not rows:
            return 0
        try:
            self.store.add_notifications(rows, now, job_id=root.id)
        except StoreError:  # another daemon told it first (the webhook-id is taken)
            log.info("pipeline_already_told", key=root.key)
            return 0
        log.info("pipeline_completed", key=root.key, jobs=len(below) + 1)
        return 1


def _roots(job: Job, jobs: dict[str, Job]) -> set[str]:
    """The jobs without parents above ``job`` (itself, if it has none)."""
    found: set[str] = set()
    todo, seen = [job.key], set()
    while todo:
        key = todo.pop()
        if key in seen or key not in jobs:
            continue
        seen.add(key)
        parents = jobs[key].parents
        if not parents:
            found.add(key)
        todo.extend(parents)
    return found
