"""What a request's taskId and audioId refer to, and the tracks a music task makes.

Pure functions over the engine's indices (tasks by id, tracks by audio id, one exclusive
conversion per track), called with the engine's lock held.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from orchestrator.sandbox.kinds import MUSIC_FAMILY, Kind
from orchestrator.sandbox.lifecycle import TaskDraws
from orchestrator.sandbox.markers import Failure, failure_for_code
from orchestrator.sandbox.tasks import Task, Track
from orchestrator.sandbox.validation import MODEL_NAMES, Rejection

#: kinds a track may be converted by only once (the second is a conflict), and the field named
EXCLUSIVE_KINDS: dict[str, str] = {"music_video": "Mp4", "wav": "Wav"}
SAMPLE_TAGS: tuple[str, ...] = ("pop, upbeat", "ambient, calm", "rock, energetic", "jazz, smooth")


def stable_hex(*parts: object) -> str:
    """A hex digest fixed by its parts (the seed, a purpose, indices): replays exactly."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class Source:
    """What a request's taskId/audioId point at, and a failure they force (451 ...)."""

    task: Task | None
    track: Track | None
    failure: Failure | None


def find_source(
    body: dict[str, Any], tasks: dict[str, Task], audio_index: dict[str, tuple[str, int]]
) -> tuple[Task, Track] | None:
    """The task and track a request's audioId (and taskId, when given) point at."""
    audio = audio_index.get(str(body.get("audioId")))
    if audio is None:
        return None
    task = tasks[audio[0]]
    if "taskId" in body and body["taskId"] != task.task_id:
        return None
    return task, task.tracks[audio[1]]


def check_references(
    kind: Kind,
    body: dict[str, Any],
    now: float,
    tasks: dict[str, Task],
    audio_index: dict[str, tuple[str, int]],
    exclusive: dict[tuple[str, str], str],
) -> Rejection | Source:
    """Look up the taskId/audioId a request names; refuse what the store contradicts."""
    if kind in ("generate_music", "lyrics"):
        return Source(None, None, None)
    if "taskId" in body and body["taskId"] not in tasks:
        return Rejection("invalid", "taskId")
    found = find_source(body, tasks, audio_index)
    if found is None:
        return Rejection("invalid", "audioId")
    task, track = found
    ready = task.audio_complete(track.audio_id, now)
    if kind == "replace_section":
        start, end = float(body["infillStartS"]), float(body["infillEndS"])
        if not ready:
            return Rejection("invalid", "audioId")
        if end > track.duration or end - start > track.duration / 2:
            return Rejection("invalid", "infillEndS")
    if kind == "extend":
        if not ready:
            return Rejection("invalid", "audioId")
        continue_at = body.get("continueAt")
        if body.get("defaultParamFlag") and float(continue_at or 0) >= track.duration:
            return Rejection("invalid", "continueAt")
    if kind in EXCLUSIVE_KINDS:
        existing = exclusive.get((kind, track.audio_id))
        if existing is not None and tasks[existing].succeeds:
            return Rejection("conflict", EXCLUSIVE_KINDS[kind])
    failure = None
    if not ready and kind in ("music_video", "vocal_removal"):
        failure = failure_for_code(kind, 451)
    elif not ready and kind == "wav":
        failure = failure_for_code(kind, 400)
    return Source(task, track, failure)


def make_lyrics(kind: Kind, body: dict[str, Any], index: int) -> tuple[tuple[str, str], ...]:
    """The two lyrics variants a lyrics task writes (none for other kinds): (title, text)."""
    if kind != "lyrics":
        return ()
    prompt = " ".join(str(body.get("prompt") or "").split())
    title = " ".join(prompt.split()[:4]).title()[:80] or "Untitled"
    lines = (
        f"[Verse]\n{prompt}\nand the night goes on",
        f"[Verse]\nsomewhere in {prompt.lower()}\n[Chorus]\nwe sing it once again",
    )
    return tuple((title, f"{text}\n({index}.{n})") for n, text in enumerate(lines))


def make_tracks(
    kind: Kind, body: dict[str, Any], index: int, draws: TaskDraws, source: Source, seed: int
) -> tuple[Track, ...]:
    """The two tracks a music task makes (none for other kinds), named and timed."""
    if kind not in MUSIC_FAMILY:
        return ()
    prompt = str(body.get("prompt") or "")
    base = source.track
    if kind == "generate_music" and body.get("customMode"):
        title, tags = str(body["title"]), str(body["style"])
    elif kind == "generate_music":
        words = prompt.split()[:4]
        title = " ".join(words).title()[:80] or "Untitled"
        tags = SAMPLE_TAGS[index % len(SAMPLE_TAGS)]
        prompt = f"[Verse]\n{prompt}"
    elif kind == "extend":
        assert base is not None
        title = str(body.get("title") or base.title)
        tags = str(body.get("style") or base.tags)
        prompt = prompt or base.prompt
    else:
        assert base is not None
        title, tags = str(body["title"]), str(body["tags"])
    model = body.get("model")
    model_name = MODEL_NAMES.get(str(model), base.model_name if base else "chirp-v4-5")
    durations = draws.track_durations
    if kind == "replace_section" and base is not None:
        durations = (base.duration, base.duration)
    return tuple(
        Track(
            audio_id=str(uuid.UUID(stable_hex(seed, "audio", index, n)[:32], version=4)),
            title=title,
            prompt=prompt,
            tags=tags,
            model_name=model_name,
            duration=durations[n],
        )
        for n in range(2)
    )
