"""Pipelines, pure: references are checked when a job is recorded (naming the job and the
param), resolved with their types, and :func:`settle` decides what a waiting job does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.domain import Job, JobError
from orchestrator.pipelines import (
    BAD_REFERENCE,
    PARENT_FAILED,
    Done,
    Expand,
    Fail,
    Known,
    PipelineError,
    Release,
    Spec,
    Wait,
    check,
    check_all,
    ordered,
    resolve,
    settle,
)
from orchestrator.service import children_index, descendants, tree_order
from orchestrator.states import JobState

S = JobState
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SONG_RESULT = {
    "status": "SUCCESS",
    "tracks": [
        {"id": "a-1", "audio_url": "http://x/1.mp3", "title": "One", "duration": 31.5},
        {"id": "a-2", "audio_url": "http://x/2.mp3", "title": "Two", "duration": 40},
    ],
    "video_url": None,
}
MUSIC = {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "piano"}


def job(key: str, state: JobState = S.COMPLETED, **fields: Any) -> Job:
    values: dict[str, Any] = {"task_id": f"task-{key}"}
    if state == S.COMPLETED and "result" not in fields:
        values["result"] = SONG_RESULT
    values.update(fields)
    return Job(
        id=1,
        key=key,
        kind=values.pop("kind", "generate_music"),
        provider="sunoapi",
        state=state,
        params=values.pop("params", MUSIC),
        created_at=T0,
        updated_at=T0,
        **values,
    )


def known(**jobs: str) -> Any:
    return lambda key: Known(jobs[key]) if key in jobs else None


# --- checked when recorded --------------------------------------------------------------------


def video_spec(**overrides: Any) -> Spec:
    values: dict[str, Any] = {
        "key": "video",
        "kind": "music_video",
        "params": {"taskId": "${song.task_id}", "audioId": "${item.id}", "author": "me"},
        "after": ("song",),
        "for_each": "song.tracks",
    }
    values.update(overrides)
    return Spec(**values)


def test_a_well_formed_pipeline_passes() -> None:
    check(video_spec(), known(song="generate_music"))
    check(
        Spec(
            "chorus",
            "replace_section",
            {"audioId": "${song.tracks[0].id}", "end": "${song.result.tracks[0].duration}"},
            ("song",),
        ),
        known(song="generate_music"),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (video_spec(after=("nope",)), "after names 'nope', which is no known job"),
        (video_spec(after=()), "for_each needs after"),
        (video_spec(for_each=None), "${item.id} needs for_each"),
        (video_spec(params={"audioId": "${item.size}"}), "a track has no field 'size'"),
        (video_spec(params={"taskId": "${other.task_id}"}), "refers to 'other', which is not"),
        (video_spec(params={"audioId": "${song.tracks[0].colour}"}), "no field 'colour'"),
        (video_spec(params={"audioId": "${song.tracks[0]}"}), "add the field"),
        (video_spec(params={"audioId": "${song.id}"}), "is not a reference"),
        (video_spec(params={"audioId": "${song.task_id"}), "never closed"),
        (video_spec(for_each="song.items"), "for_each must be KEY.tracks or KEY.result.PATH"),
        (video_spec(after=("song", "song")), "lists a parent twice"),
        (video_spec(key="song"), "cannot wait for itself"),
        (Spec("x", "wav", {"taskId": "${song.task_id}"}), "needs after"),
    ],
)
def test_a_bad_reference_is_refused_naming_the_job_and_the_param(spec: Spec, message: str) -> None:
    with pytest.raises(PipelineError) as caught:
        check(spec, known(song="generate_music"))
    assert message in str(caught.value)
    assert repr(spec.key) in str(caught.value)


def test_tracks_of_a_kind_without_tracks_are_refused() -> None:
    spec = Spec("w", "wav", {"audioId": "${vid.tracks[0].id}"}, ("vid",))
    with pytest.raises(PipelineError, match="music_video results have no tracks"):
        check(spec, known(vid="music_video"))


def test_a_for_each_job_has_no_result_of_its_own() -> None:
    spec = Spec("w", "wav", {"taskId": "${video.task_id}"}, ("video",))
    with pytest.raises(PipelineError, match="is a for_each job"):
        check(spec, lambda key: Known("music_video", "song.tracks"))


def test_a_cycle_is_refused_with_its_path() -> None:
    specs = [
        Spec("a", "wav", {}, ("c",)),
        Spec("b", "wav", {}, ("a",)),
        Spec("c", "wav", {}, ("b",)),
    ]
    with pytest.raises(PipelineError, match=r"cycle: (a|b|c) -> .* -> \1"):
        check_all(specs, known())


def test_jobs_recorded_together_go_parents_first() -> None:
    specs = [Spec("c", "wav", {}, ("b",)), Spec("b", "wav", {}, ("a",)), Spec("a", "wav", {})]
    check_all(specs, known())
    assert [s.key for s in ordered(specs)] == ["a", "b", "c"]


# --- resolved when released -------------------------------------------------------------------


def test_a_whole_reference_keeps_its_type_and_a_spliced_one_is_text() -> None:
    parents = {"song": job("song")}
    params = {
        "duration": "${song.tracks[0].duration}",
        "title": "${song.tracks[1].title} (video of ${song.task_id})",
        "price": "$$5 and $3",
        "nested": {"ids": ["${song.tracks[0].id}", "${song.result.tracks[1].id}"]},
        "n": 3,
    }
    assert resolve(params, parents) == {
        "duration": 31.5,
        "title": "Two (video of task-song)",
        "price": "$5 and $3",
        "nested": {"ids": ["a-1", "a-2"]},
        "n": 3,
    }


def test_a_reference_the_result_cannot_satisfy_is_a_clear_error() -> None:
    with pytest.raises(PipelineError, match=r"no item \[5\] \(the list has 2\)"):
        resolve({"audioId": "${song.tracks[5].id}"}, {"song": job("song")})


# --- settled as the releaser sees it ----------------------------------------------------------


def waiting(key: str = "video", **fields: Any) -> Job:
    template = fields.pop("template", {"taskId": "${song.task_id}", "audioId": "${item.id}"})
    return job(
        key,
        S.WAITING,
        kind="music_video",
        params=template,
        template=template,
        parents=fields.pop("parents", ("song",)),
        task_id=None,
        **fields,
    )


@pytest.mark.parametrize("state", [S.QUEUED, S.PENDING, S.RUNNING, S.SUCCEEDED])
def test_a_job_waits_while_a_parent_is_on_its_way(state: JobState) -> None:
    decision = settle(waiting(for_each="song.tracks"), {"song": job("song", state)})
    assert isinstance(decision, Wait) and f"song ({state.value})" in decision.why


@pytest.mark.parametrize("state", [S.FAILED, S.TIMED_OUT, S.CANCELLED])
def test_a_parent_that_did_not_complete_fails_the_job(state: JobState) -> None:
    decision = settle(waiting(), {"song": job("song", state)})
    assert decision == Fail(PARENT_FAILED, f"parent 'song' ended {state.value}")


def test_every_parent_completed_releases_with_resolved_params() -> None:
    decision = settle(
        waiting(template={"taskId": "${song.task_id}", "audioId": "${song.tracks[1].id}"}),
        {"song": job("song")},
    )
    assert decision == Release({"taskId": "task-song", "audioId": "a-2"})


def test_a_for_each_job_expands_one_child_per_item() -> None:
    decision = settle(waiting(for_each="song.tracks"), {"song": job("song")})
    assert decision == Expand(
        (
            ("video.0", {"taskId": "task-song", "audioId": "a-1"}),
            ("video.1", {"taskId": "task-song", "audioId": "a-2"}),
        )
    )


def test_an_expanded_for_each_job_is_done_when_its_children_are() -> None:
    group = waiting(for_each="song.tracks", result={"children": ["video.0", "video.1"]})
    one = {"video.0": job("video.0"), "video.1": job("video.1", S.RUNNING)}
    assert isinstance(settle(group, one), Wait)
    both = {"video.0": job("video.0"), "video.1": job("video.1")}
    assert settle(group, both) == Done()
    failed = {"video.0": job("video.0"), "video.1": job("video.1", S.FAILED)}
    assert settle(group, failed) == Fail(PARENT_FAILED, "child 'video.1' ended failed")


def test_a_bad_reference_at_release_fails_it_without_submitting() -> None:
    decision = settle(waiting(template={"a": "${song.tracks[9].id}"}), {"song": job("song")})
    assert isinstance(decision, Fail) and decision.code == BAD_REFERENCE


# --- trees ----------------------------------------------------------------------------------


def test_status_draws_a_tree_and_descendants_are_found_once() -> None:
    jobs = [
        job("song"),
        job("video", S.WAITING, parents=("song",)),
        job("chorus", parents=("song",)),
        job("video.0", parents=("video",)),
        job("wav", S.WAITING, parents=("chorus", "song")),
    ]
    drawn = [(prefix + j.key) for j, prefix in tree_order(jobs)]
    assert drawn == ["song", "├─ video", "│  └─ video.0", "└─ chorus", "   └─ wav"]
    index = children_index(jobs)
    assert index["song"] == ["video", "chorus", "wav"]
    assert sorted(descendants("song", index)) == ["chorus", "video", "video.0", "wav"]


def test_failed_job_error_code_marks_what_a_retry_revives() -> None:
    failed = job("x", S.FAILED, error=JobError("dependency", PARENT_FAILED, "parent 'a' failed"))
    assert failed.error is not None and failed.error.code == PARENT_FAILED
