"""The sweeper: clock-driven observations.

Deadlines (pending/running past ``deadline_at`` become `timed_out`), submits whose worker died
(`submitting` with an expired lease becomes `uncertain`), and `uncertain` jobs whose grace
period is over (the configured policy decides; with `hold` nothing is claimed at all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from orchestrator.machine import Policy, UncertainPolicy
from orchestrator.observations import DeadlinePassed, SubmitLeaseExpired, UncertainGraceOver
from orchestrator.reconciler import Reconciler
from orchestrator.stores.base import DEADLINE, STALE_SUBMIT, UNCERTAIN, Store


class Sweeper:
    def __init__(
        self,
        store: Store,
        reconciler: Reconciler,
        policy: Policy,
        *,
        owner: str,
        lease_s: float,
        clock: Callable[[], datetime],
        stop: threading.Event,
        batch: int = 200,
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.policy = policy
        self.owner = owner
        self.lease_s = lease_s
        self.clock = clock
        self.stop = stop
        self.batch = batch

    def tick(self) -> int:
        done = 0
        now = self.clock()
        for job in self.store.claim(STALE_SUBMIT, self.owner, now, self.lease_s, self.batch):
            self.reconciler.observe(job, SubmitLeaseExpired(), now, release_owner=self.owner)
            done += 1
        for job in self.store.claim(DEADLINE, self.owner, now, self.lease_s, self.batch):
            self.reconciler.observe(job, DeadlinePassed(), now, release_owner=self.owner)
            done += 1
        if self.policy.uncertain_policy != UncertainPolicy.HOLD:
            cutoff = now - timedelta(seconds=self.policy.uncertain_grace_s)
            for job in self.store.claim(
                UNCERTAIN, self.owner, now, self.lease_s, self.batch, older_than=cutoff
            ):
                self.reconciler.observe(job, UncertainGraceOver(), now, release_owner=self.owner)
                done += 1
        return done
