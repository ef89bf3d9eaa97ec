"""Keeps the learned durations the schedule reads current.

Every few seconds the store's durations history (samples written with each success, in the
same transaction, by any daemon sharing the database) is read; when it changed, a new
:class:`~orchestrator.durations.DurationBook` goes into the reconciler's policy, which the
pure machine reads on its next decision. Swapping one immutable book for another needs no
lock: a decision sees either the old book or the new one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from orchestrator import schedule
from orchestrator.durations import DurationBook
from orchestrator.logs import get_logger
from orchestrator.reconciler import Reconciler
from orchestrator.schedule import PollStrategy
from orchestrator.stores.base import Store

log = get_logger("orchestrator.learner")


class Learner:
    def __init__(
        self, store: Store, reconciler: Reconciler, *, history: int, half_life: float
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.history = history
        self.half_life = half_life
        self._seen: tuple[int, datetime | None] | None = None

    def tick(self) -> DurationBook | None:
        """Refresh the book if the history changed; the new book, or None."""
        policy = self.reconciler.policy
        if policy.adaptive.strategy == PollStrategy.FIXED:
            return None
        samples = self.store.durations(self.history)
        seen = (len(samples), max((s.recorded_at for s in samples), default=None))
        if seen == self._seen:
            return None
        self._seen = seen
        book = DurationBook.from_samples(samples, history=self.history, half_life=self.half_life)
        schedule.prepare(book, policy.poll_interval_s, policy.adaptive)
        policy = self.reconciler.policy
        self.reconciler.policy = replace(policy, adaptive=replace(policy.adaptive, book=book))
        kinds = sorted({kind for kind, _ in book.learned})
        log.info("durations_learned", samples=len(samples), kinds=kinds)
        return book
