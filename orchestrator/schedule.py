"""Where the next poll goes: pure functions of learned durations, a job's timeline and knobs.

No clock, no I/O: the machine hands in the seconds since the job's submit was accepted.

**Fixed** (``strategy = "fixed"``): every ``interval_s`` (with jitter), as a plain poller.

**Adaptive** (the default) places polls where completion is likely:

1. *What this job is likely to do.* Each learned sample (a succeeded job of the same kind and
   model, :mod:`orchestrator.durations`) is shifted onto this job's own timeline: when the
   job was seen reaching stage *s* somewhere in ``[lo, hi]`` seconds, the sample's own time
   for *s* is clamped into that bracket and its completion moved by the same amount (a job
   seen at FIRST_SUCCESS early finishes early). Samples that contradict what was seen (this
   job had not reached the next stage, or had not finished, by its latest report) drop out.
   What is left, weighted (newest weigh most), is the conditional distribution of this job's
   completion time.
2. *A budget no higher than the fixed interval's.* A fixed poller spends ``ceil(T /
   interval_s)`` polls on a job that takes T; averaged over the learned samples, that is
   what a job of this kind costs it. The adaptive schedule cuts the conditional distribution
   into equally likely slices and polls at the end of each: with ``k`` budgeted polls a job
   uses ``(k + 1) / 2`` of them on average, so ``k`` is the most whose average stays within
   the fixed poller's.
3. *The next poll* is at the conditional quantile ``quantile / remaining`` (the last budgeted
   poll at ``quantile``, 0.95: one freak sample cannot push it out), never sooner than
   ``min_gap_s``. Once the budget is spent, or the job is slower than every sample that fits
   it, the schedule falls back to the plain interval: a slow outlier costs what it would
   cost a fixed poller. Fewer than ``min_samples`` learned jobs: the fixed interval (cold
   start).

**Callbacks as evidence.** After a progress callback (verify mode) the safety-net poll goes
where the terminal callback should have come by (the conditional ``quantile``) plus
``safety_margin_s``; a terminal callback the verifying poll does not confirm yet (record-info
lags) gets confirmation polls at ``confirm_delay_s``, growing by ``confirm_growth``, each gap
at most ``confirm_max_gap_s``, for up to ``confirm_window_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from weakref import WeakKeyDictionary

from orchestrator.durations import (
    EMPTY_BOOK,
    STAGES,
    DurationBook,
    DurationSample,
    Learned,
    Points,
    weighted_quantile,
    weighted_share,
)
from orchestrator.observations import STATUS_RANK, UpstreamStatus


class PollStrategy(StrEnum):
    """How polls are spaced (``[polling] strategy``)."""

    ADAPTIVE = "adaptive"  #: from learned durations, within the fixed interval's budget
    FIXED = "fixed"  #: every interval_s


@dataclass(frozen=True)
class Adaptive:
    """The adaptive strategy's knobs and what it has learned (see the module docstring)."""

    strategy: PollStrategy = PollStrategy.ADAPTIVE
    min_gap_s: float = 2.0
    min_samples: int = 5
    quantile: float = 0.95
    safety_margin_s: float = 5.0
    confirm_growth: float = 1.5
    confirm_max_gap_s: float = 3.0
    confirm_window_s: float = 60.0
    book: DurationBook = EMPTY_BOOK


@dataclass(frozen=True)
class NextPoll:
    """A decision: poll again in ``delay_s`` (None: the caller's fixed interval), and why."""

    delay_s: float | None
    note: str


# --- a job's timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """What one job was seen doing, in seconds since its submit was accepted.

    ``stages`` maps a stage to the bracket it was reached in: (the latest report before it,
    the first report showing it); a callback, sent as the stage is reached, gives an exact
    bracket. ``last_s`` is the latest report's time; ``polls_at_accept`` the job's poll count
    when this attempt was accepted (the budget counts polls from there).
    """

    stages: Mapping[str, tuple[float, float]]
    last_s: float = 0.0
    polls_at_accept: int = 0

    @classmethod
    def start(cls, polls: int) -> Timeline:
        return cls({}, 0.0, polls)

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Timeline:
        if not value:
            return cls({})
        stages = {k: (float(v[0]), float(v[1])) for k, v in value.get("stages", {}).items()}
        return cls(stages, float(value.get("last_s", 0.0)), int(value.get("polls_at_accept", 0)))

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in self.stages.items()},
            "last_s": round(self.last_s, 3),
            "polls_at_accept": self.polls_at_accept,
        }

    def seen(self, status: UpstreamStatus, elapsed: float, *, exact: bool) -> Timeline:
        """This timeline after a report of ``status`` at ``elapsed`` (exact: a callback)."""
        if status == UpstreamStatus.FAILED:
            return self
        stages = dict(self.stages)
        lo = elapsed if exact else min(self.last_s, elapsed)
        for stage in STAGES:
            if STATUS_RANK[stage] > STATUS_RANK[status]:
                break
            if stage.value not in stages:
                stages[stage.value] = (lo, elapsed)
            elif exact and stages[stage.value][1] > elapsed:
                stages[stage.value] = (elapsed, elapsed)  # a callback narrows a poll's bracket
        return Timeline(stages, max(self.last_s, elapsed), self.polls_at_accept)

    def called_back(self) -> bool:
        """Whether a callback announced any progress of this attempt (an exact bracket):
        its callbacks are alive, so its outcome will most likely be announced too."""
        return any(lo == hi for stage, (lo, hi) in self.stages.items() if stage != STAGES[-1].value)

    def up_to(self, rank: int) -> Timeline:
        """Without the stages beyond ``rank`` (what only an unconfirmed callback claimed)."""
        kept = {k: v for k, v in self.stages.items() if STATUS_RANK[UpstreamStatus(k)] <= rank}
        return Timeline(kept, self.last_s, self.polls_at_accept)

    def furthest(self) -> tuple[UpstreamStatus | None, tuple[float, float]]:
        """The furthest stage seen short of SUCCESS, and its bracket (None: none yet)."""
        for stage in reversed(STAGES[:-1]):
            if stage.value in self.stages:
                return stage, self.stages[stage.value]
        return None, (0.0, 0.0)

    def sample(self, kind: str, model: str, recorded_at: Any) -> DurationSample | None:
        """The learned sample a success makes, None if it is unusable."""
        done = self.stages.get(UpstreamStatus.SUCCESS.value)
        if done is None or done[1] <= 0:
            return None
        return DurationSample(
            kind=kind,
            model=model,
            recorded_at=recorded_at,
            done=done,
            text=self.stages.get(UpstreamStatus.TEXT_SUCCESS.value),
            first=self.stages.get(UpstreamStatus.FIRST_SUCCESS.value),
        )


# --- the schedule -----------------------------------------------------------------------------


def budget(learned: Learned, interval_s: float, knobs: Adaptive) -> tuple[int, float]:
    """(k, fixed): what a fixed poller spends on these jobs on average (``fixed``; jobs beyond
    the ``quantile`` count as if they had finished there, so one freak job cannot raise the
    budget of all), and the most budgeted polls ``k`` whose average use over equally likely
    slices, (k + 1) / 2, stays within it. Memoised per learned group and knobs (the learner
    warms it when it refreshes the book)."""
    key = (interval_s, knobs.quantile)
    memo = _BUDGETS.setdefault(learned, {})
    if key not in memo:
        cut = weighted_quantile(learned.done, knobs.quantile)
        fixed = sum(w * max(1, math.ceil(min(v, cut) / interval_s)) for v, w in learned.done)
        memo[key] = (max(1, math.floor(2 * fixed - 1 + 1e-9)), fixed)
    return memo[key]


_BUDGETS: WeakKeyDictionary[Learned, dict[tuple[float, float], tuple[int, float]]] = (
    WeakKeyDictionary()
)


def prepare(book: DurationBook, interval_s: float, knobs: Adaptive) -> None:
    """Work out every group's budget now (the learner's thread), not at the next poll."""
    for learned in book.learned.values():
        if learned.count >= knobs.min_samples:
            budget(learned, interval_s, knobs)


def _within(points: Points, lo: float, hi: float) -> Points:
    """``points`` restricted to [lo, hi]; when none fall there, the bracket itself."""
    inside = tuple((v, w) for v, w in points if lo <= v <= hi)
    if inside:
        return inside
    if hi - lo < 1e-6:
        return ((hi, 1.0),)
    return tuple((lo + (j + 0.5) * (hi - lo) / 4, 0.25) for j in range(4))


def conditional(learned: Learned, timeline: Timeline, elapsed: float) -> list[tuple[float, float]]:
    """(completion time, weight), sorted: when this job completes, given what was seen of it
    and that it had not completed by ``elapsed``."""
    stage, (lo, hi) = timeline.furthest()
    remaining = learned.remaining.get(stage.value) if stage is not None else None
    if stage is None or not remaining:
        return [(v, w) for v, w in learned.done if v > elapsed]
    reach = _within(learned.reach.get(stage.value, ()), lo, hi)
    points = [(r + g, rw * gw) for r, rw in reach for g, gw in remaining if r + g > elapsed]
    points.sort()
    return points


def _secs(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def _stage_label(timeline: Timeline) -> str:
    stage, _ = timeline.furthest()
    return (stage or UpstreamStatus.PENDING).value


def next_poll(
    kind: str,
    model: str,
    timeline: Timeline,
    elapsed: float,
    polls: int,
    interval_s: float,
    knobs: Adaptive,
) -> NextPoll:
    """The next poll of a pollable job whose latest poll (at ``elapsed``) was not terminal;
    ``polls`` is the job's poll count including that one."""
    if knobs.strategy == PollStrategy.FIXED:
        return NextPoll(None, f"fixed: every {interval_s:g} s")
    learned = knobs.book.lookup(kind, model, knobs.min_samples)
    if learned is None:
        have = knobs.book.count(kind)
        return NextPoll(
            None,
            f"adaptive, cold start: {have} of {knobs.min_samples} {kind} jobs learned,"
            f" every {interval_s:g} s",
        )
    k, fixed = budget(learned, interval_s, knobs)
    used = max(0, polls - timeline.polls_at_accept)
    label = _stage_label(timeline)
    if used >= k:
        return NextPoll(
            None,
            f"adaptive: {used} of {k} budgeted polls used ({fixed:.1f} per job at a fixed"
            f" {interval_s:g} s), every {interval_s:g} s",
        )
    points = conditional(learned, timeline, elapsed)
    if not points:
        return NextPoll(
            None,
            f"adaptive: slower than all {learned.count} learned {kind} jobs at {label},"
            f" every {interval_s:g} s",
        )
    target = weighted_quantile(points, knobs.quantile / (k - used))
    delay = max(knobs.min_gap_s, target - elapsed)
    share = weighted_share(points, elapsed + delay)
    return NextPoll(
        delay,
        f"adaptive: {share:.0%} of {learned.count} learned {kind} jobs at {label} finished"
        f" within {_secs(delay)} s; {used} of {k} budgeted polls used",
    )


def safety_net(
    kind: str,
    model: str,
    timeline: Timeline,
    elapsed: float,
    polls: int,
    interval_s: float,
    knobs: Adaptive,
) -> NextPoll | None:
    """After a progress callback: poll when the terminal callback should have come by, plus a
    margin (None: nothing learned, or fixed strategy; the caller keeps its fixed factor).

    That one late look is enough while terminal callbacks are rarely lost. When the learned
    jobs say they are lost more often than the safety net may miss (1 - ``quantile``), the
    job keeps the full adaptive schedule from the stage its callback announced.
    """
    if knobs.strategy == PollStrategy.FIXED:
        return None
    learned = knobs.book.lookup(kind, model, knobs.min_samples)
    if learned is None:
        return None
    loss = learned.terminal_loss
    if loss is not None and loss > 1 - knobs.quantile:
        plan = next_poll(kind, model, timeline, elapsed, polls, interval_s, knobs)
        why = f"terminal callbacks lost for {loss:.0%} of learned {kind} jobs"
        if plan.delay_s is None:
            return NextPoll(interval_s, f"{why}: every {interval_s:g} s")
        return NextPoll(plan.delay_s, f"{why}; {plan.note}")
    points = conditional(learned, timeline, elapsed)
    if not points:
        return None
    target = weighted_quantile(points, knobs.quantile)
    delay = max(knobs.min_gap_s, target - elapsed + knobs.safety_margin_s)
    return NextPoll(
        delay,
        f"safety net: {knobs.quantile:.0%} of learned {kind} jobs at {_stage_label(timeline)}"
        f" finished within {_secs(target - elapsed)} s (callbacks alive),"
        f" + {knobs.safety_margin_s:g} s",
    )


def confirm_delay(n: int, first_s: float, knobs: Adaptive) -> float | None:
    """The gap before confirmation poll ``n + 1`` of a terminal callback (0-based ``n``),
    or None once ``confirm_window_s`` of them have passed."""
    cap = max(knobs.confirm_max_gap_s, first_s)
    gaps = [min(first_s * knobs.confirm_growth**i, cap) for i in range(n + 1)]
    if sum(gaps[:-1]) >= knobs.confirm_window_s:
        return None
    return max(gaps[-1], 1e-3)
