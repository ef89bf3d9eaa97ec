"""The credit guard's rules, pure (orchestrator.credits): when submitting is held and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.credits import (
    CreditRules,
    CreditState,
    check_due,
    checked,
    counted,
    hold,
    refused,
    room,
)

T0 = datetime(2026, 12, 2, 23, 59, tzinfo=UTC)
RULES = CreditRules(min_credits=20, check_s=60.0)


def test_a_balance_below_the_minimum_holds_and_a_top_up_releases() -> None:
    low = checked(CreditState(), 10, T0)
    assert "balance 10 is below min_credits 20" in (hold(low, RULES, T0) or "")
    assert hold(checked(low, 20, T0), RULES, T0) is None


def test_at_zero_even_without_a_minimum_nothing_is_submitted() -> None:
    assert hold(checked(CreditState(), 0, T0), CreditRules(), T0) is not None
    assert hold(checked(CreditState(), 1, T0), CreditRules(), T0) is None


def test_the_balance_is_read_at_most_every_check_s() -> None:
    state = checked(CreditState(), 100, T0)
    assert check_due(CreditState(), RULES, T0)
    assert not check_due(state, RULES, T0 + timedelta(seconds=59))
    assert check_due(state, RULES, T0 + timedelta(seconds=60))


def test_a_refusal_holds_until_the_balance_grows_past_what_it_was() -> None:
    state = refused(checked(CreditState(), 30, T0), "insufficient credits")
    assert "refused a submit (insufficient credits)" in (hold(state, CreditRules(), T0) or "")
    same = checked(state, 30, T0 + timedelta(minutes=1))
    assert hold(same, CreditRules(), T0) is not None  # the same balance cannot pay either
    assert hold(checked(same, 31, T0), CreditRules(), T0) is None


def test_the_daily_cap_counts_per_utc_day_and_says_when_it_resumes() -> None:
    rules = CreditRules(max_submits_per_day=2)
    state = counted(counted(CreditState(), T0), T0)
    assert room(state, rules, T0) == 0
    assert "resumes at 2026-12-03T00:00:00" in (hold(state, rules, T0) or "")
    tomorrow = T0 + timedelta(minutes=2)
    assert hold(state, rules, tomorrow) is None and room(state, rules, tomorrow) == 2
    assert counted(state, tomorrow).submits == 1
    assert room(state, CreditRules(), T0) is None


def test_the_state_survives_its_json() -> None:
    state = refused(counted(checked(CreditState(), 7, T0), T0), "no money")
    assert CreditState.from_json(state.to_json()) == state
    assert CreditState.from_json(None) == CreditState()
