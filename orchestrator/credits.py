"""The credit guard's rules, pure: when submitting stops for lack of credits, and why.

Every submit costs credits. The daemon reads the balance before submitting, at most every
``check_s``; below ``min_credits`` (or at zero) it stops submitting, keeps the jobs `queued`
and says why, and resumes by itself once a check finds the balance back. An out-of-credits
answer to a submit holds the queue the same way until a check finds more credits than there
were when it came. ``max_submits_per_day`` (0: no cap) caps how many submits go out per UTC
day. The state lives in the store's account records (:data:`RECORD`), so every daemon on one
database, and `status` and `show` in another process, see the same hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from orchestrator.clock import ensure_utc, isoformat

#: the account record the guard's state is kept under
RECORD: Final = "credits"


@dataclass(frozen=True)
class CreditRules:
    min_credits: int = 0
    check_s: float = 60.0
    #: submits per UTC day at most (0: no cap)
    max_submits_per_day: int = 0


@dataclass(frozen=True)
class CreditState:
    balance: int | None = None
    checked_at: datetime | None = None
    #: an out-of-credits answer to a submit, and the balance known when it came
    refused: str | None = None
    refused_balance: int | None = None
    #: the UTC day ``submits`` counts
    day: str | None = None
    submits: int = 0
    #: why submitting is held now (None: it is not), for `status` and `show`
    hold: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checked_at"] = isoformat(self.checked_at)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CreditState:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        when = known.get("checked_at")
        known["checked_at"] = ensure_utc(datetime.fromisoformat(when)) if when else None
        return cls(**known)


def today(now: datetime) -> str:
    return ensure_utc(now).date().isoformat()


def check_due(state: CreditState, rules: CreditRules, now: datetime) -> bool:
    return state.checked_at is None or (now - state.checked_at).total_seconds() >= rules.check_s


def checked(state: CreditState, balance: int, now: datetime) -> CreditState:
    """After a balance check: a refusal stands until the balance grew past what it was."""
    refused, at = state.refused, state.refused_balance
    if refused is not None and (at is None or balance > at):
        refused, at = None, None
    return replace(state, balance=balance, checked_at=now, refused=refused, refused_balance=at)


def refused(state: CreditState, message: str) -> CreditState:
    return replace(state, refused=message[:200], refused_balance=state.balance)


def counted(state: CreditState, now: datetime) -> CreditState:
    """One more submit sent today."""
    day = today(now)
    return replace(state, day=day, submits=(state.submits if state.day == day else 0) + 1)


def sent_today(state: CreditState, now: datetime) -> int:
    return state.submits if state.day == today(now) else 0


def next_day(now: datetime) -> datetime:
    start = ensure_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1)


def hold(state: CreditState, rules: CreditRules, now: datetime) -> str | None:
    """Why submitting must wait now, in a sentence (None: it need not)."""
    every = f"checked every {rules.check_s:g} s"
    cap = rules.max_submits_per_day
    if cap > 0 and sent_today(state, now) >= cap:
        return (
            f"credits: max_submits_per_day ({cap}) reached; submitting resumes at "
            f"{isoformat(next_day(now))}"
        )
    if state.refused is not None:
        return (
            f"credits: the upstream refused a submit ({state.refused}); submitting resumes "
            f"once the balance grows (balance {every})"
        )
    balance = state.balance
    if balance is not None and (balance <= 0 or balance < rules.min_credits):
        return (
            f"credits: balance {balance} is below min_credits {max(rules.min_credits, 1)}; "
            f"submitting resumes by itself once topped up ({every})"
        )
    return None


def room(state: CreditState, rules: CreditRules, now: datetime) -> int | None:
    """How many submits the daily cap still allows today (None: no cap)."""
    if rules.max_submits_per_day <= 0:
        return None
    return max(0, rules.max_submits_per_day - sent_today(state, now))
