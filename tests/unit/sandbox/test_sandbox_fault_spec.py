"""Parsing ``--faults`` and the seeded fault dice."""

from __future__ import annotations

import math

import pytest

from orchestrator.sandbox.faults import RATE_FAULTS, FaultDice, FaultSpec, parse_faults


def test_empty_spec_is_the_well_behaved_upstream() -> None:
    assert parse_faults("") == FaultSpec()
    assert parse_faults(" , ") == FaultSpec()
    assert all(getattr(FaultSpec(), name) == 0 for name in RATE_FAULTS)
    assert FaultSpec().slow_s == 15.0 and FaultSpec().lag == 0


def test_the_issue_example_parses() -> None:
    spec = parse_faults(
        "drop=0.3,duplicate=0.2,early=0.1,reorder=0.1,lag=2,poll_error=0.05,"
        "submit_error=0.05,rate_limit=0.05,slow=0.02,reset=0.01"
    )
    assert (spec.drop, spec.duplicate, spec.early, spec.reorder, spec.lag) == (
        0.3,
        0.2,
        0.1,
        0.1,
        2.0,
    )
    assert (spec.poll_error, spec.submit_error, spec.rate_limit, spec.slow, spec.reset) == (
        0.05,
        0.05,
        0.05,
        0.02,
        0.01,
    )
    assert parse_faults(spec.to_spec()) == spec


def test_every_fault_name_and_whitespace() -> None:
    spec = parse_faults(" http200 = 1 , expire=0.5,fail=0.25, slow_s=0.5 ")
    assert (spec.http200, spec.expire, spec.fail, spec.slow_s) == (1.0, 0.5, 0.25, 0.5)
    assert spec.to_spec() == "http200=1,expire=0.5,fail=0.25,slow_s=0.5"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dorp=0.3", "unknown fault 'dorp'"),
        ("drop=abc", "'abc' is not a number"),
        ("drop=1.5", "between 0 and 1"),
        ("drop=-0.1", "between 0 and 1"),
        ("lag=-1", ">= 0"),
        ("drop", "expected name=value"),
        ("drop=0.1,drop=0.2", "given twice"),
        ("drop=nan", "finite"),
        ("lag=inf", "finite"),
    ],
)
def test_bad_specs_name_the_bad_item(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_faults(spec)
    assert spec.split(",")[-1].split("=")[0].strip() in str(caught.value)


def test_fault_spec_validates_direct_construction() -> None:
    with pytest.raises(ValueError, match="drop"):
        FaultSpec(drop=2)
    with pytest.raises(ValueError, match="slow_s"):
        FaultSpec(slow_s=-1)


def test_dice_are_seeded_and_independent_per_fault() -> None:
    one, two = FaultDice(5), FaultDice(5)
    draws = [one.roll("drop", 0.5) for _ in range(50)]
    assert draws == [two.roll("drop", 0.5) for _ in range(50)]
    three = FaultDice(5)
    for _ in range(20):
        three.roll("slow", 0.5)  # another fault's stream does not shift this one
    assert [three.roll("drop", 0.5) for _ in range(50)] == draws
    assert [FaultDice(6).roll("drop", 0.5) for _ in range(50)] != draws


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3, 1.0])
def test_dice_rate_is_right_over_many_draws(rate: float) -> None:
    dice = FaultDice(0)
    hits = sum(dice.roll("poll_error", rate) for _ in range(2000))
    sigma = math.sqrt(2000 * rate * (1 - rate))
    assert abs(hits - 2000 * rate) <= 4 * sigma + 1
