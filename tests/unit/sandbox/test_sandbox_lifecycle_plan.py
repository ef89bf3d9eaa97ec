"""Lifecycle plans: stages, offsets and callbacks per kind, with task-level faults."""

from __future__ import annotations

import math
import random

import pytest

from orchestrator.sandbox.faults import FaultSpec
from orchestrator.sandbox.kinds import Kind
from orchestrator.sandbox.lifecycle import Plan, TaskDraws, build_plan
from orchestrator.sandbox.markers import failure_for_code, failure_from_markers


def draws(index: int = 0, seed: int = 0) -> TaskDraws:
    return TaskDraws.draw(random.Random(f"{seed}:task:{index}"))


def plan(kind: Kind, faults: FaultSpec | None = None, index: int = 0, **kw: object) -> Plan:
    failure = kw.get("failure")
    return build_plan(kind, draws(index), failure, faults or FaultSpec(), 1.0)  # type: ignore[arg-type]


def test_generate_plan_has_three_stages_in_realistic_windows() -> None:
    for index in range(100):
        p = plan("generate_music", index=index)
        text, first, done = p.stages
        assert (text.status, first.status, done.status) == (
            "TEXT_SUCCESS",
            "FIRST_SUCCESS",
            "SUCCESS",
        )
        assert 5 <= text.offset <= 10 and 30 <= first.offset <= 40
        assert 60 <= done.offset <= 180 and done.offset >= first.offset + 10
        assert done.terminal and not first.terminal
        assert [c.callback for c in p.callbacks] == ["text", "first", "complete"]


def test_time_scale_multiplies_every_offset() -> None:
    slow = build_plan("generate_music", draws(), None, FaultSpec(), 1.0)
    fast = build_plan("generate_music", draws(), None, FaultSpec(), 0.01)
    for a, b in zip(slow.stages, fast.stages, strict=True):
        assert b.offset == pytest.approx(a.offset * 0.01)


def test_replace_section_only_calls_back_the_outcome() -> None:
    p = plan("replace_section")
    assert [s.status for s in p.stages] == ["TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"]
    assert [c.callback for c in p.callbacks] == ["complete"]


@pytest.mark.parametrize("kind", ["music_video", "wav", "vocal_removal"])
def test_media_kinds_have_one_stage(kind: Kind) -> None:
    for index in range(30):
        p = plan(kind, index=index)
        assert [s.status for s in p.stages] == ["SUCCESS"]
        assert 40 <= p.terminal.offset <= 120


def test_failures_end_the_plan() -> None:
    failure = failure_for_code("generate_music", 501)
    p = build_plan("generate_music", draws(), failure, FaultSpec(), 1.0)
    assert [s.status for s in p.stages] == ["TEXT_SUCCESS", "GENERATE_AUDIO_FAILED"]
    assert [c.callback for c in p.callbacks] == ["text", "error"]
    sensitive = failure_from_markers("generate_music", {"prompt": "SENSITIVE_WORD"})
    p = build_plan("generate_music", draws(), sensitive, FaultSpec(), 1.0)
    assert [s.status for s in p.stages] == ["SENSITIVE_WORD_ERROR"] and p.terminal.offset <= 3
    video = failure_for_code("music_video", 451)
    p = build_plan("music_video", draws(), video, FaultSpec(), 1.0)
    assert p.terminal.status == "GENERATE_MP4_FAILED" and 5 <= p.terminal.offset <= 15


def test_early_moves_the_first_callback_to_the_submit() -> None:
    p = plan("generate_music", FaultSpec(early=1))
    assert p.stages[0].offset == 0 and p.stages[1].offset > 0
    assert p.callbacks[0].early and p.callbacks[0].due == 0 and "early" in p.faults
    video = plan("music_video", FaultSpec(early=1))
    assert video.terminal.offset == 0 and video.callbacks[0].early
    replace = plan("replace_section", FaultSpec(early=1))
    assert all(s.offset == 0 for s in replace.stages)  # its only callback is the outcome


def test_drop_removes_callbacks_but_never_the_early_one() -> None:
    p = plan("generate_music", FaultSpec(drop=1))
    assert p.callbacks == () and p.dropped == (0, 1, 2)
    p = plan("generate_music", FaultSpec(drop=1, early=1))
    assert [c.callback for c in p.callbacks] == ["text"] and p.dropped == (1, 2)


def test_reorder_sends_first_after_complete() -> None:
    p = plan("generate_music", FaultSpec(reorder=1))
    assert [c.callback for c in p.callbacks] == ["text", "complete", "first"]
    assert p.stages[1].offset < p.stages[2].offset  # the statuses themselves keep their order
    assert plan("music_video", FaultSpec(reorder=1)).faults == ()  # one callback: nothing to swap


def test_duplicate_adds_second_copies_later() -> None:
    p = plan("generate_music", FaultSpec(duplicate=1))
    copies = [(c.callback, c.copy) for c in p.callbacks]
    assert sorted(copies) == sorted([(s, n) for s in ("text", "first", "complete") for n in (1, 2)])
    for copy in (c for c in p.callbacks if c.copy == 2):
        original = next(c for c in p.callbacks if c.callback == copy.callback and c.copy == 1)
        assert 0.2 <= copy.due - original.due <= 3.0


def test_draws_are_deterministic_per_seed_and_index() -> None:
    assert draws(3, seed=1) == draws(3, seed=1)
    assert draws(3, seed=1) != draws(4, seed=1)
    assert draws(3, seed=1) != draws(3, seed=2)


def test_drop_rate_over_many_tasks() -> None:
    faults = FaultSpec(drop=0.3)
    dropped = sum(len(plan("generate_music", faults, index=i).dropped) for i in range(300))
    sigma = math.sqrt(900 * 0.3 * 0.7)
    assert abs(dropped - 270) <= 4 * sigma
