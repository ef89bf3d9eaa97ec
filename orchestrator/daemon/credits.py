"""The credit guard in the daemon: reads the balance through the provider, keeps the state
in the store's account record, and tells the submitter how many submits may go now
(rules in :mod:`orchestrator.credits`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.credits import (
    RECORD,
    CreditRules,
    CreditState,
    check_due,
    checked,
    counted,
    hold,
    next_day,
    refused,
    room,
)
from orchestrator.exceptions import UpstreamError
from orchestrator.logs import get_logger
from orchestrator.providers.base import Provider
from orchestrator.stores.base import Store

log = get_logger("orchestrator.credits")


class CreditGuard:
    def __init__(
        self,
        store: Store,
        provider: Provider,
        rules: CreditRules,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.provider = provider
        self.rules = rules
        self.clock = clock
        self._lock = threading.Lock()
        #: while held, nothing is asked of the store or the upstream before this time
        self._held_until: datetime | None = None

    def held(self) -> bool:
        """Cheap: is submitting held and not due for another look?"""
        until = self._held_until
        return until is not None and self.clock() < until

    def allow(self, wanted: int) -> int:
        """How many of ``wanted`` submits may go now (0: held). Checks the balance first
        when a check is due."""
        if wanted <= 0:
            return 0
        with self._lock:
            now = self.clock()
            state = self._load()
            if check_due(state, self.rules, now):
                state = self._check(state, now)
            reason = hold(state, self.rules, now)
            if reason != state.hold:
                if reason is not None:
                    log.warning("credit_hold", reason=reason)
                else:
                    log.info("credit_resumed", balance=state.balance)
                state = replace(state, hold=reason)
                self._save(state, now)
            if reason is not None:
                until = now + timedelta(seconds=self.rules.check_s)
                if reason.startswith("credits: max_submits_per_day"):
                    until = min(until, next_day(now))
                self._held_until = until
                return 0
            self._held_until = None
            left = room(state, self.rules, now)
            return wanted if left is None else min(wanted, left)

    def sent(self) -> None:
        """A submit went out (whatever its answer): it counts for the daily cap."""
        if self.rules.max_submits_per_day <= 0:
            return

        def count(value: dict[str, Any] | None, now: datetime) -> tuple[dict[str, Any], None]:
            return counted(CreditState.from_json(value), now).to_json(), None

        # atomic across daemons: each one's submits count against the one daily cap
        self.store.update_account(RECORD, count, self.clock)

    def out_of_credits(self, message: str) -> None:
        """The upstream refused a submit for credits: hold the queue until topped up."""

        def refuse(
            value: dict[str, Any] | None, now: datetime
        ) -> tuple[dict[str, Any], str | None]:
            state = refused(CreditState.from_json(value), message)
            reason = hold(state, self.rules, now)
            return replace(state, hold=reason).to_json(), reason

        reason = self.store.update_account(RECORD, refuse, self.clock)
        now = self.clock()
        with self._lock:
            self._held_until = now + timedelta(seconds=self.rules.check_s)
        log.warning("credit_hold", reason=reason)

    def _check(self, state: CreditState, now: datetime) -> CreditState:
        try:
            balance = self.provider.credits()
        except UpstreamError as exc:
            # not known: submits go on (an empty account still answers "no credits")
            log.warning("credit_check_failed", error=exc.message)
            return replace(state, checked_at=now)
        log.info("credit_checked", balance=balance)
        return checked(state, balance, now)

    def _load(self) -> CreditState:
        return CreditState.from_json(self.store.account(RECORD))

    def _save(self, state: CreditState, now: datetime) -> None:
        self.store.set_account(RECORD, state.to_json(), now)
