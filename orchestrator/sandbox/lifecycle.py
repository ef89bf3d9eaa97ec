"""Task lifecycles as pure plans: which statuses, at which offsets, with which callbacks.

A task's whole life is decided at submit time from its seeded draws: nothing ticks. The
status record-info shows at time ``t`` is the last stage whose offset (plus ``lag``) has
passed; the delivery thread sends each stage's callback at its offset. Unscaled durations (the
``uniform`` model; :mod:`orchestrator.sandbox.durations` has the ``lognormal`` one):

- generate / extend / replace section: TEXT_SUCCESS 5-10 s, FIRST_SUCCESS 30-40 s,
  SUCCESS 60-180 s; a generation failure comes 20-60 s in, after TEXT_SUCCESS; a
  sensitive-word or task-creation failure 1-3 s in, with no progress before it.
- music video, WAV, vocal removal: SUCCESS 40-120 s; failure 10-40 s (1-3 s for a creation
  failure, 5-15 s for a source audio that cannot be fetched); lyrics: SUCCESS 10-30 s.

Callbacks per kind: generate and extend send ``text``, ``first``, ``complete`` (or ``error``);
replace section only ``complete`` or ``error`` (as its callback page says); music video, WAV
vocal removal and lyrics one callback, success or failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from orchestrator.sandbox.durations import Durations, unit
from orchestrator.sandbox.kinds import MUSIC_FAMILY, Kind

if TYPE_CHECKING:
    from orchestrator.sandbox.faults import FaultSpec
    from orchestrator.sandbox.markers import Failure

#: kinds whose callbacks report progress (text, first) as well as the outcome
PROGRESS_CALLBACKS: frozenset[str] = frozenset({"generate_music", "extend"})

SUCCESS = "SUCCESS"
TEXT_SUCCESS = "TEXT_SUCCESS"
FIRST_SUCCESS = "FIRST_SUCCESS"
PENDING = "PENDING"
CALLBACK_EXCEPTION = "CALLBACK_EXCEPTION"

#: how many independent draws a task gets for per-stage faults (more than any plan has stages)
STAGE_SLOTS = 4


@dataclass(frozen=True)
class TaskDraws:
    """Every random number a task will ever need, drawn at submit in a fixed order."""

    text_at: float
    first_at: float
    complete_at: float
    fail_at: float
    track_durations: tuple[float, float]
    drop: tuple[float, ...]
    duplicate: tuple[float, ...]
    duplicate_delay: float
    early: float
    reorder: float
    reorder_delay: float
    fail: float
    fail_code: float
    time_format: int
    pending_shape: int
    text_data_shape: int

    @classmethod
    def draw(cls, rng: random.Random) -> TaskDraws:
        return cls(
            text_at=rng.uniform(5.0, 10.0),
            first_at=rng.uniform(30.0, 40.0),
            complete_at=rng.uniform(60.0, 180.0),
            fail_at=rng.uniform(0.0, 1.0),
            track_durations=(
                round(rng.uniform(60.0, 240.0), 2),
                round(rng.uniform(60.0, 240.0), 2),
            ),
            drop=tuple(rng.random() for _ in range(STAGE_SLOTS)),
            duplicate=tuple(rng.random() for _ in range(STAGE_SLOTS)),
            duplicate_delay=rng.uniform(0.2, 3.0),
            early=rng.random(),
            reorder=rng.random(),
            reorder_delay=rng.uniform(2.0, 5.0),
            fail=rng.random(),
            fail_code=rng.random(),
            time_format=rng.randrange(3),
            pending_shape=rng.randrange(2),
            text_data_shape=rng.randrange(2),
        )


@dataclass(frozen=True)
class Stage:
    """One status the task reaches, ``offset`` scaled seconds after its submit."""

    status: str
    #: callbackType sent when the stage is reached, or None when this stage sends none
    callback: str | None
    offset: float
    terminal: bool = False


@dataclass(frozen=True)
class PlannedCallback:
    """One delivery of one stage's callback (a duplicate is a second delivery)."""

    stage_index: int
    callback: str
    #: scaled seconds after submit when the first attempt is due
    due: float
    copy: int = 1
    #: delivered synchronously before the submit response (the ``early`` fault)
    early: bool = False


@dataclass(frozen=True)
class Plan:
    stages: tuple[Stage, ...]
    failure: Failure | None
    callbacks: tuple[PlannedCallback, ...]
    #: stage indexes whose callback the ``drop`` fault removed
    dropped: tuple[int, ...]
    #: fault names that shaped this plan (early, reorder, duplicate, drop, fail)
    faults: tuple[str, ...]

    @property
    def terminal(self) -> Stage:
        return self.stages[-1]


def _stages(
    kind: Kind, draws: TaskDraws, failure: Failure | None, durations: Durations
) -> list[Stage]:
    progress = kind in PROGRESS_CALLBACKS
    text_at, first_at, complete_at = draws.text_at, draws.first_at, draws.complete_at
    single_at = 40.0 + 80.0 * draws.fail_at
    if durations.model == "lognormal":
        text_at = durations.lognormal("text", unit(draws.text_at, 5.0, 10.0))
        first_at = max(durations.lognormal("first", unit(draws.first_at, 30.0, 40.0)), text_at + 1)
        complete_at = first_at + durations.lognormal("gap", unit(draws.complete_at, 60.0, 180.0))
        single_at = durations.lognormal("single", draws.fail_at)
    if kind in MUSIC_FAMILY:
        if failure is not None and failure.immediate:
            return [Stage(failure.status, "error", 1.0 + 2.0 * draws.fail_at, terminal=True)]
        text = Stage(TEXT_SUCCESS, "text" if progress else None, text_at)
        if failure is not None:
            fail_at = max(20.0 + 40.0 * draws.fail_at, text_at + 1.0)
            return [text, Stage(failure.status, "error", fail_at, terminal=True)]
        first = Stage(FIRST_SUCCESS, "first" if progress else None, first_at)
        complete_at = max(complete_at, first_at + (10.0 if durations.model == "uniform" else 0.5))
        return [text, first, Stage(SUCCESS, "complete", complete_at, terminal=True)]
    if kind == "lyrics":  # text only: quicker than any audio
        single_at = single_at / 4.0
    if failure is None:
        return [Stage(SUCCESS, "complete", single_at, terminal=True)]
    if failure.immediate:
        return [Stage(failure.status, "error", 1.0 + 2.0 * draws.fail_at, terminal=True)]
    if failure.code == 451:
        return [Stage(failure.status, "error", 5.0 + 10.0 * draws.fail_at, terminal=True)]
    return [Stage(failure.status, "error", 10.0 + 30.0 * draws.fail_at, terminal=True)]


#: how soon (real seconds) an ``accept_5xx`` task's proving callback follows the answer
PROOF_AFTER_S = 0.05


def build_plan(
    kind: Kind,
    draws: TaskDraws,
    failure: Failure | None,
    faults: FaultSpec,
    time_scale: float,
    proof: str | None = None,
    durations: Durations | None = None,
) -> Plan:
    """The task's stages and callback deliveries, scaled, with the task-level faults applied.

    ``failure`` is the failure already decided (marker, source audio, ``fail`` fault).
    ``proof`` ("before" | "after", the ``accept_5xx`` fault): the first callback's stage is
    reached at once and its callback, never dropped, goes out before the submit's (error)
    answer or :data:`PROOF_AFTER_S` after it.
    """
    used: list[str] = []
    shape = durations or Durations()
    stages = [
        replace(s, offset=s.offset * time_scale) for s in _stages(kind, draws, failure, shape)
    ]
    with_callback = [i for i, stage in enumerate(stages) if stage.callback is not None]

    early_index: int | None = None
    if proof is not None and with_callback:
        early_index = with_callback[0]
        for i in range(early_index + 1):
            stages[i] = replace(stages[i], offset=0.0 if proof == "before" else PROOF_AFTER_S)
    elif draws.early < faults.early and with_callback:
        early_index = with_callback[0]
        used.append("early")
        for i in range(early_index + 1):  # everything up to the first callback happens at once
            stages[i] = replace(stages[i], offset=0.0)

    dropped: list[int] = []
    planned: list[PlannedCallback] = []
    for slot, index in enumerate(with_callback):
        stage = stages[index]
        assert stage.callback is not None
        if index != early_index and draws.drop[slot] < faults.drop:
            dropped.append(index)
            continue
        early = index == early_index and proof != "after"
        planned.append(PlannedCallback(index, stage.callback, stage.offset, early=early))
    if dropped:
        used.append("drop")

    if draws.reorder < faults.reorder and len(planned) >= 2:
        # the next-to-last callback arrives after the terminal one
        late = planned[-2]
        if not late.early and late.stage_index != early_index:
            used.append("reorder")
            delay = draws.reorder_delay * time_scale
            planned[-2] = replace(late, due=planned[-1].due + delay)

    duplicates: list[PlannedCallback] = []
    for slot, callback in enumerate(planned):
        if draws.duplicate[slot % STAGE_SLOTS] < faults.duplicate:
            delay = draws.duplicate_delay * time_scale
            duplicates.append(replace(callback, due=callback.due + delay, copy=2, early=False))
    if duplicates:
        used.append("duplicate")

    ordered = sorted(planned + duplicates, key=lambda c: (c.due, c.copy))
    return Plan(tuple(stages), failure, tuple(ordered), tuple(dropped), tuple(used))
