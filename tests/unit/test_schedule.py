"""The adaptive schedule as pure functions: learned durations + a job's timeline + budget ->
when to poll next. Clocks are moved by hand (seconds since the accepted submit)."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.durations import (
    KEPT_PER_GROUP,
    POOLED,
    DurationBook,
    DurationSample,
    estimate,
    newest_per_group,
    weighted_quantile,
)
from orchestrator.observations import UpstreamStatus as U
from orchestrator.schedule import (
    Adaptive,
    PollStrategy,
    Timeline,
    budget,
    confirm_delay,
    next_poll,
    safety_net,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
I = 30.0  # the fixed interval  # noqa: E741
KIND = "generate_music"


def sample(
    done: float, first: float | None = None, *, age: int = 0, width: float = 0.0
) -> DurationSample:
    return DurationSample(
        kind=KIND,
        model="V4",
        recorded_at=T0 - timedelta(seconds=age),
        done=(done - width, done),
        first=None if first is None else (first - width, first),
    )


def book_of(samples: list[DurationSample], half_life: float = 50.0) -> DurationBook:
    return DurationBook.from_samples(samples, history=200, half_life=half_life)


def realistic(n: int, seed: int = 1) -> list[DurationSample]:
    """FIRST_SUCCESS ~ 40 s, SUCCESS a short gap after it, exact brackets (callbacks)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        first = 40.0 * math.exp(rng.gauss(0, 0.15))
        out.append(sample(first + 10.0 * math.exp(rng.gauss(0, 0.3)), first, age=i))
    return out


KNOBS = Adaptive(book=book_of(realistic(100)))


def plan(timeline: Timeline, elapsed: float, polls: int, knobs: Adaptive = KNOBS) -> float | None:
    return next_poll(KIND, "V4", timeline, elapsed, polls, I, knobs).delay_s


# --- cold start, fixed, fallbacks -------------------------------------------------------------


def test_fixed_strategy_and_cold_start_use_the_plain_interval() -> None:
    fixed = next_poll(KIND, "V4", Timeline.start(0), 0.0, 0, I, Adaptive(PollStrategy.FIXED))
    assert fixed.delay_s is None and fixed.note == "fixed: every 30 s"
    few = Adaptive(book=book_of(realistic(4)))
    cold = next_poll(KIND, "V4", Timeline.start(0), 0.0, 0, I, few)
    assert cold.delay_s is None
    assert "cold start: 4 of 5 generate_music jobs learned" in cold.note
    assert next_poll("wav", "", Timeline.start(0), 0.0, 0, I, KNOBS).delay_s is None


def test_a_job_slower_than_everything_learned_falls_back_to_the_interval() -> None:
    longest = max(s.done[1] - s.first[1] for s in realistic(100))  # type: ignore[index]
    seen = Timeline.start(0).seen(U.FIRST_SUCCESS, 40.0, exact=True)
    decision = next_poll(KIND, "V4", seen, 40.0 + longest + 1, 1, I, KNOBS)
    assert decision.delay_s is None
    assert "slower than all 100 learned" in decision.note


def test_the_budget_spent_falls_back_to_the_interval() -> None:
    k, fixed = budget(KNOBS.book.lookup(KIND, "V4", 5), I, KNOBS)  # type: ignore[arg-type]
    assert (k + 1) / 2 <= fixed  # the average use of k budgeted polls is within the fixed cost
    decision = next_poll(KIND, "V4", Timeline.start(0), 45.0, k, I, KNOBS)
    assert decision.delay_s is None and f"{k} of {k} budgeted polls used" in decision.note
    # polls of an earlier attempt do not count against this one's budget
    assert next_poll(KIND, "V4", Timeline.start(7), 45.0, 7, I, KNOBS).delay_s is not None


# --- where polls go ---------------------------------------------------------------------------


def test_the_first_poll_waits_for_the_learned_range_not_the_interval() -> None:
    delay = plan(Timeline.start(0), 0.0, 0)
    fastest = min(s.done[0] for s in realistic(100))
    assert delay is not None and delay >= fastest  # no poll where nothing ever finished
    assert delay > I  # ... which here is after a fixed poller's first


def test_a_job_seen_at_first_success_early_is_expected_to_finish_early() -> None:
    early = Timeline.start(0).seen(U.FIRST_SUCCESS, 30.0, exact=True)
    late = Timeline.start(0).seen(U.FIRST_SUCCESS, 50.0, exact=True)
    at_early = 30.0 + plan(early, 30.0, 1)  # type: ignore[operator]
    at_late = 50.0 + plan(late, 50.0, 1)  # type: ignore[operator]
    assert at_early < at_late
    assert plan(early, 30.0, 1) == pytest.approx(plan(late, 50.0, 1), abs=2.0)  # same gap ahead


def test_never_two_polls_closer_than_min_gap() -> None:
    knobs = replace(KNOBS, min_gap_s=7.0)
    seen = Timeline.start(0).seen(U.FIRST_SUCCESS, 49.0, exact=False)
    for elapsed in (49.0, 50.0, 52.0, 55.0):
        delay = plan(seen, elapsed, 1, knobs)
        assert delay is None or delay >= 7.0


def test_one_freak_sample_does_not_move_the_schedule() -> None:
    calm = realistic(60)
    freak = Adaptive(book=book_of([sample(2000.0, 40.0), *calm]))
    plain = Adaptive(book=book_of(calm))
    for polls in (0, 1, 2):
        a, b = (
            plan(Timeline.start(0), 0.0, polls, freak),
            plan(Timeline.start(0), 0.0, polls, plain),
        )
        assert a is not None and b is not None and abs(a - b) <= 3.0


def test_recent_durations_outweigh_old_ones() -> None:
    old = [sample(100.0 + i % 5, age=1000 + i) for i in range(100)]
    new = [sample(50.0 + i % 5, age=i) for i in range(30)]
    learned = book_of(old + new, half_life=10.0).lookup(KIND, "V4", 5)
    assert learned is not None
    assert weighted_quantile(learned.done, 0.5) < 60.0  # the upstream got faster: followed


def test_a_model_with_few_samples_borrows_its_kinds_other_models() -> None:
    other = [replace(s, model="V3_5") for s in realistic(20)]
    book = book_of(other + [replace(s, model="V5") for s in realistic(2)])
    assert book.lookup(KIND, "V5", 5) is book.learned[(KIND, POOLED)]
    assert book.lookup(KIND, "V3_5", 5) is book.learned[(KIND, "V3_5")]


# --- cost and latency, against a fixed poller, with moved clocks --------------------------------


def simulate(knobs: Adaptive | None, jobs: list[tuple[float, float]]) -> tuple[float, float]:
    """(mean detection latency, mean polls) of polling each (first, done) job."""
    latencies, polls = [], []
    for first, done in jobs:
        timeline, t, n = Timeline.start(0), 0.0, 0
        while True:
            delay = None if knobs is None else plan(timeline, t, n, knobs)
            t += I if delay is None else delay
            n += 1
            status = U.SUCCESS if t >= done else U.FIRST_SUCCESS if t >= first else U.PENDING
            timeline = timeline.seen(status, t, exact=False)
            if status == U.SUCCESS:
                break
        latencies.append(t - done)
        polls.append(n)
    return statistics.mean(latencies), statistics.mean(polls)


def test_adaptive_detects_sooner_than_the_fixed_interval_at_no_more_polls() -> None:
    truth = [(s.first[1], s.done[1]) for s in realistic(300, seed=2)]  # type: ignore[index]
    # learned the way a daemon learns: from its own (fixed-interval, then adaptive) polls
    rng = random.Random(3)
    history = []
    for first, done in truth[:100]:  # each seen between two polls about 9 s apart
        a, b = rng.random() * 9, rng.random() * 9
        brackets = {
            "FIRST_SUCCESS": (first - a, first + 9 - a),
            "SUCCESS": (done - b, done + 9 - b),
        }
        history.append(Timeline(brackets).sample(KIND, "V4", T0))
    knobs = Adaptive(book=book_of([s for s in history if s is not None]))
    fixed_latency, fixed_polls = simulate(None, truth[100:])
    latency, polls = simulate(knobs, truth[100:])
    # the budget holds in expectation over what was learned; these 200 jobs are not the
    # learned ones (scripts/bench measures the same over the sandbox)
    assert polls <= fixed_polls * 1.1
    assert latency <= fixed_latency / 2


# --- learning ---------------------------------------------------------------------------------


def test_wide_brackets_take_their_shape_from_narrow_ones() -> None:
    narrow = [(60.0 + j, 60.0 + j, 1.0) for j in range(5)]  # callbacks: 60-64 s
    wide = [(30.0, 90.0, 1.0)] * 20  # a 60 s poller saw "somewhere in 30-90 s"
    points = estimate(narrow + wide)
    assert weighted_quantile(points, 0.05) >= 58.0 and weighted_quantile(points, 0.95) <= 66.0


def test_the_estimate_is_smooth_not_a_spike_on_the_narrowest_cells() -> None:
    rng = random.Random(4)
    truth = [50.0 + rng.gauss(0, 5) for _ in range(200)]
    polled = []  # seen by a schedule's polls: the same few times for all, a little jitter
    for value in truth:
        times = [0.0] + [t * (1 + 0.02 * (rng.random() - 0.5)) for t in (44, 49, 52, 58, 80)]
        hit = next(i for i, t in enumerate(times) if t >= value)
        polled.append((times[hit - 1], times[hit], 1.0))
    points = estimate(polled)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(weighted_quantile(points, q) - sorted(truth)[int(q * 200)]) < 2.0


def test_a_timeline_brackets_each_stage_between_two_reports() -> None:
    timeline = Timeline.start(3)
    timeline = timeline.seen(U.PENDING, 10.0, exact=False)
    timeline = timeline.seen(U.FIRST_SUCCESS, 42.0, exact=False)  # TEXT and FIRST both
    timeline = timeline.seen(U.SUCCESS, 55.0, exact=True)  # the complete callback
    timeline = timeline.seen(U.SUCCESS, 57.0, exact=False)  # the verifying poll
    assert timeline.stages == {
        "TEXT_SUCCESS": (10.0, 42.0),
        "FIRST_SUCCESS": (10.0, 42.0),
        "SUCCESS": (55.0, 55.0),
    }
    assert Timeline.from_json(timeline.to_json()) == timeline
    learned = timeline.sample(KIND, "V4", T0)
    assert learned is not None and learned.done == (55.0, 55.0) and learned.first == (10.0, 42.0)
    assert timeline.up_to(2).stages.keys() == {"TEXT_SUCCESS", "FIRST_SUCCESS"}


def test_the_history_keeps_the_newest_of_each_group() -> None:
    samples = [replace(sample(60.0, age=i), kind=k) for i in range(10) for k in ("a", "b")]
    kept = newest_per_group(samples, 3)
    assert [(s.kind, s.recorded_at) for s in kept] == [
        (k, T0 - timedelta(seconds=i)) for i in range(3) for k in ("a", "b")
    ]
    assert KEPT_PER_GROUP >= 200


# --- callbacks as evidence --------------------------------------------------------------------


def test_after_a_progress_callback_the_safety_net_is_when_the_terminal_one_was_due() -> None:
    seen = Timeline.start(0).seen(U.FIRST_SUCCESS, 40.0, exact=True)
    net = safety_net(KIND, "V4", seen, 40.0, 1, I, KNOBS)
    assert net is not None and net.delay_s is not None
    gaps = sorted(s.done[1] - s.first[1] for s in realistic(100))  # type: ignore[index]
    q95 = gaps[94]
    assert q95 + KNOBS.safety_margin_s - 3 <= net.delay_s <= q95 + KNOBS.safety_margin_s + 3
    assert net.delay_s < 3 * I  # far sooner than the fixed factor's 90 s
    assert safety_net(KIND, "V4", seen, 40.0, 1, I, Adaptive(PollStrategy.FIXED)) is None
    assert safety_net(KIND, "V4", seen, 40.0, 1, I, Adaptive()) is None  # nothing learned


def test_when_terminal_callbacks_are_often_lost_the_full_schedule_follows_a_progress_one() -> None:
    calm = realistic(100)  # every stage called back (exact brackets): nothing lost
    assert KNOBS.book.lookup(KIND, "V4", 5).terminal_loss == 0.0  # type: ignore[union-attr]
    # half of them: the complete callback never came, a poll saw the success in a bracket
    lossy = [
        replace(s, done=(s.done[0] - 3.0, s.done[1])) if i % 2 else s for i, s in enumerate(calm)
    ]
    knobs = Adaptive(book=book_of(lossy))
    loss = knobs.book.lookup(KIND, "V4", 5).terminal_loss  # type: ignore[union-attr]
    assert loss == pytest.approx(0.5, abs=0.05)
    seen = Timeline.start(0).seen(U.FIRST_SUCCESS, 40.0, exact=True)
    net = safety_net(KIND, "V4", seen, 40.0, 1, I, knobs)
    plan = next_poll(KIND, "V4", seen, 40.0, 1, I, knobs)
    assert net is not None and plan.delay_s is not None
    assert net.delay_s == plan.delay_s  # the schedule's next slice, not one late look
    assert net.note.startswith("terminal callbacks lost for ") and plan.note in net.note
    sparse = safety_net(KIND, "V4", seen, 40.0, 1, I, KNOBS)
    assert sparse is not None and sparse.delay_s is not None and net.delay_s < sparse.delay_s


@pytest.mark.parametrize("lag", [2.0, 5.0, 10.0, 30.0])
def test_a_record_info_lag_of_l_seconds_is_seen_within_l_plus_the_gap_cap(lag: float) -> None:
    knobs = Adaptive()
    t, n = 0.0, 0
    while t < lag:
        gap = confirm_delay(n, 2.0, knobs)
        assert gap is not None and gap <= knobs.confirm_max_gap_s
        t, n = t + gap, n + 1
    assert t <= lag + knobs.confirm_max_gap_s


def test_confirmation_polls_grow_and_stop_after_the_window() -> None:
    knobs = Adaptive(confirm_growth=2.0, confirm_max_gap_s=8.0, confirm_window_s=20.0)
    gaps = []
    while (gap := confirm_delay(len(gaps), 1.0, knobs)) is not None:
        gaps.append(gap)
    assert gaps == [1.0, 2.0, 4.0, 8.0, 8.0]  # the window passed after 15 s, one more look
    assert sum(gaps[:-1]) < 20.0 <= sum(gaps)
