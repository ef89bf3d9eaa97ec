"""Learned durations: how long the upstream took, per kind and model, from completed jobs.

A :class:`DurationSample` is one job that succeeded: the seconds from its accepted submit to
each upstream stage it was seen to reach (TEXT_SUCCESS, FIRST_SUCCESS, SUCCESS). The store
keeps the newest few hundred per (kind, model) (so the history is bounded and survives
restarts; daemons sharing PostgreSQL share it) and :class:`DurationBook` is a frozen
snapshot of them that the pure scheduler (:mod:`orchestrator.schedule`) reads.

Robust and decaying by construction: the scheduler uses weighted quantiles, never means
(one 20-minute outlier moves a quantile by one sample, a mean by minutes), and each sample
weighs ``0.5 ** (age / half_life)`` where age is how many newer samples its group has, so an
upstream that became slower or faster is followed within about one half-life of jobs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from orchestrator.observations import UpstreamStatus

#: the stages a sample times, in order
STAGES: Final = (UpstreamStatus.TEXT_SUCCESS, UpstreamStatus.FIRST_SUCCESS, UpstreamStatus.SUCCESS)

#: the model name of a kind's pooled group (every model together)
POOLED: Final = "*"

#: samples the store keeps per (kind, model): the history's hard bound
KEPT_PER_GROUP: Final = 500


Bracket = tuple[float, float]


@dataclass(frozen=True)
class DurationSample:
    """One succeeded job: for each stage it was seen to reach, the bracket (seconds from
    accepted submit) it was reached in: (the latest report before, the first report showing
    it). A callback gives an exact bracket; a poller's is as wide as its gaps, and the
    scheduler spreads the sample evenly across it (a coarse poller's history is then a smooth
    distribution, not lumps at its poll times)."""

    kind: str
    model: str  #: "" for kinds without a model parameter
    recorded_at: datetime
    done: Bracket
    text: Bracket | None = None
    first: Bracket | None = None

    @property
    def done_s(self) -> float:
        """The midpoint of the completion bracket."""
        return (self.done[0] + self.done[1]) / 2

    def bracket(self, stage: UpstreamStatus) -> Bracket | None:
        if stage == UpstreamStatus.TEXT_SUCCESS:
            return self.text
        if stage == UpstreamStatus.FIRST_SUCCESS:
            return self.first
        if stage == UpstreamStatus.SUCCESS:
            return self.done
        return None

    def called_back(self, stage: UpstreamStatus) -> bool:
        """Whether a callback announced the stage: only a callback gives an exact bracket
        (a poll's starts at the report before it)."""
        bracket = self.bracket(stage)
        return bracket is not None and bracket[0] == bracket[1]

    def at(self, stage: UpstreamStatus, u: float = 0.5) -> float | None:
        """The stage's time at position ``u`` of its bracket (0: its start, 1: its end)."""
        bracket = self.bracket(stage)
        if bracket is None:
            return None
        return bracket[0] + u * (bracket[1] - bracket[0])


def newest_per_group(samples: Iterable[DurationSample], limit: int) -> list[DurationSample]:
    """The first ``limit`` of each (kind, model) group of ``samples`` (given newest first)."""
    taken: dict[tuple[str, str], int] = {}
    out: list[DurationSample] = []
    for sample in samples:
        key = (sample.kind, sample.model)
        if taken.get(key, 0) < limit:
            taken[key] = taken.get(key, 0) + 1
            out.append(sample)
    return out


def model_of(params: Mapping[str, object]) -> str:
    """The model a job's params ask for ("" when none): durations are learned per model."""
    model = params.get("model")
    return model if isinstance(model, str) else ""


Points = tuple[tuple[float, float], ...]


def estimate(brackets: Sequence[tuple[float, float, float]]) -> Points:
    """The distribution behind interval-censored observations: (value, probability) points,
    sorted by value.

    Each observation (lo, hi, weight) says "somewhere in [lo, hi]". Spreading each evenly over
    its bracket would smear the distribution by the poller's own gaps (and a schedule learned
    from it would widen its gaps, and so on); instead the mass of each bracket goes where the
    others say the values are (Turnbull's self-consistency iteration): exact observations
    (callbacks, close polls) shape it, wide ones only add weight. The support is the cells
    between the brackets' own end points (and the exact values), so one freak observation far
    out costs no resolution where the others are; each cell's mass is reported at a few
    points across it.
    """
    usable = [(lo, hi, w) for lo, hi, w in brackets if w > 0 and hi >= lo >= 0]
    if not usable:
        return ()
    ends = sorted({v for lo, hi, _ in usable for v in (lo, hi)})
    atoms = {lo for lo, hi, _ in usable if lo == hi}
    support: list[tuple[float, float]] = []
    atom_at: dict[float, int] = {}
    cell_from: dict[float, int] = {}
    cell_to: dict[float, int] = {}
    for i, end in enumerate(ends):
        if end in atoms:
            atom_at[end] = len(support)
            support.append((end, end))
        if i + 1 < len(ends):
            cell_from[end], cell_to[ends[i + 1]] = len(support), len(support)
            support.append((end, ends[i + 1]))
    spans = []
    for lo, hi, w in usable:
        if lo == hi:
            spans.append((atom_at[lo], atom_at[lo] + 1, w))
            continue
        first = atom_at[lo] if lo in atom_at else cell_from[lo]
        last = atom_at[hi] if hi in atom_at else cell_to[hi]
        spans.append((first, last + 1, w))
    count = len(support)
    p = [1.0 / count] * count
    for _ in range(ITERATIONS):
        prefix = [0.0]
        for q in p:
            prefix.append(prefix[-1] + q)
        factor = [0.0] * (count + 1)  # a difference array: O(observations + cells) a round
        for first, stop, w in spans:
            inside = prefix[stop] - prefix[first]
            share = w / inside if inside > 0 else 0.0
            factor[first] += share
            factor[stop] -= share
        running, mass = 0.0, []
        for cell in range(count):
            running += factor[cell]
            mass.append(p[cell] * running)
        total = sum(mass)
        p = [m / total for m in mass]
    points: list[tuple[float, float]] = []
    for (a, b), q in zip(support, p, strict=True):
        if q <= 1e-9:
            continue
        if a == b:
            points.append((a, q))
        else:
            points.extend(
                (a + (j + 0.5) * (b - a) / CELL_POINTS, q / CELL_POINTS) for j in range(CELL_POINTS)
            )
    points.sort()
    return smooth(tuple(points), len(usable))


def smooth(points: Points, n: int) -> Points:
    """``points`` spread by a Gaussian kernel (Silverman's bandwidth for ``n``
    observations, from the interquartile range so that a freak value does not widen it):
    the self-consistent estimate puts its mass on the few narrowest cells, and a schedule
    aimed at such spikes polls just before most jobs finish and long after the rest. Each
    point becomes :data:`KERNEL` points; values stay >= 0."""
    spread = weighted_quantile(points, 0.75) - weighted_quantile(points, 0.25)
    h = 0.9 * spread / 1.34 * max(1, n) ** -0.2
    if h <= 0:
        return points
    spread_out = [(max(0.0, v + z * h), w * k) for v, w in points for z, k in KERNEL]
    spread_out.sort()
    return coarsen(tuple(spread_out), SMOOTHED_POINTS)


#: a five-point Gaussian quadrature: (offset in bandwidths, weight)
KERNEL: Final = ((-2.0, 0.054), (-1.0, 0.244), (0.0, 0.404), (1.0, 0.244), (2.0, 0.054))
#: at most this many points in a smoothed estimate
SMOOTHED_POINTS: Final = 96


#: points each cell's mass is reported at
CELL_POINTS: Final = 3
#: self-consistency iterations of :func:`estimate`
ITERATIONS: Final = 25


def coarsen(points: Points, most: int) -> Points:
    """At most ``most`` points: neighbours merged (weighted mean value, summed weight)."""
    if len(points) <= most:
        return points
    size = math.ceil(len(points) / most)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        weight = sum(w for _, w in chunk)
        if weight > 0:
            out.append((sum(v * w for v, w in chunk) / weight, weight))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Learned:
    """What one group's samples say: when its jobs complete, and per stage when it is reached
    and how long it is from there to completion (each an :func:`estimate`)."""

    count: int
    done: Points
    reach: Mapping[str, Points]
    remaining: Mapping[str, Points]
    #: of the jobs whose progress was called back, the (weighted) share whose terminal
    #: callback never came (the success was seen by a poll); None: no progress callbacks
    terminal_loss: float | None = None

    @classmethod
    def of(cls, samples: Sequence[DurationSample], half_life: float) -> Learned:
        """``samples`` newest first; each weighs ``0.5 ** (age / half_life)``."""
        weighted = [(s, 0.5 ** (age / half_life)) for age, s in enumerate(samples)]
        done = estimate([(*s.done, w) for s, w in weighted])
        reach: dict[str, Points] = {}
        remaining: dict[str, Points] = {}
        for stage in STAGES[:-1]:
            seen = [(b, s.done, w) for s, w in weighted if (b := s.bracket(stage)) is not None]
            if not seen:
                continue
            reach[stage.value] = coarsen(estimate([(*b, w) for b, _, w in seen]), 12)
            remaining[stage.value] = coarsen(
                estimate([(max(0.0, d[0] - b[1]), max(0.0, d[1] - b[0]), w) for b, d, w in seen]),
                24,
            )
        progress = [(s, w) for s, w in weighted if any(s.called_back(p) for p in STAGES[:-1])]
        loss = None
        if progress:
            lost = sum(w for s, w in progress if not s.called_back(UpstreamStatus.SUCCESS))
            loss = lost / sum(w for _, w in progress)
        return cls(len(samples), done, MappingProxyType(reach), MappingProxyType(remaining), loss)


@dataclass(frozen=True)
class DurationBook:
    """What the learned samples say, per (kind, model). Immutable: a refresh is a new book."""

    learned: Mapping[tuple[str, str], Learned] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_samples(
        cls, samples: Iterable[DurationSample], *, history: int, half_life: float
    ) -> DurationBook:
        """The book of ``samples`` (any order), the newest ``history`` of each group; each
        kind also gets a pooled group (model :data:`POOLED`) over all its models."""
        grouped: dict[tuple[str, str], list[DurationSample]] = {}
        for sample in samples:
            grouped.setdefault((sample.kind, sample.model), []).append(sample)
            if sample.model != POOLED:
                grouped.setdefault((sample.kind, POOLED), []).append(sample)
        learned = {
            key: Learned.of(
                sorted(group, key=lambda s: s.recorded_at, reverse=True)[:history], half_life
            )
            for key, group in grouped.items()
        }
        return cls(MappingProxyType(learned))

    def lookup(self, kind: str, model: str, minimum: int) -> Learned | None:
        """What was learned for a job of ``kind`` and ``model``: its own group when it has at
        least ``minimum`` samples, else the kind's models pooled, else None (cold start)."""
        for key in ((kind, model), (kind, POOLED)):
            found = self.learned.get(key)
            if found is not None and found.count >= minimum:
                return found
        return None

    def count(self, kind: str) -> int:
        """Samples learned for ``kind``, every model together."""
        pooled = self.learned.get((kind, POOLED))
        return 0 if pooled is None else pooled.count


EMPTY_BOOK: Final = DurationBook()


def weighted_quantile(points: Sequence[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total.

    ``points`` are (value, weight) sorted by value; q in (0, 1].
    """
    total = sum(w for _, w in points)
    target = q * total
    running = 0.0
    for value, weight in points:
        running += weight
        if running >= target - 1e-12:
            return value
    return points[-1][0]


def weighted_share(points: Sequence[tuple[float, float]], upto: float) -> float:
    """The share of the weight at values <= ``upto``."""
    total = sum(w for _, w in points)
    if total <= 0:
        return 0.0
    return sum(w for v, w in points if v <= upto) / total
