"""A submitted task and its tracks; what it shows at a given moment follows from its plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.sandbox.kinds import MUSIC_FAMILY, Kind
from orchestrator.sandbox.lifecycle import (
    CALLBACK_EXCEPTION,
    FIRST_SUCCESS,
    PENDING,
    SUCCESS,
    Plan,
    TaskDraws,
)

#: stems of a ``split_stem`` vocal removal, in record-info (camelCase) order
SPLIT_STEMS: tuple[str, ...] = (
    "vocal",
    "backingVocals",
    "drums",
    "bass",
    "guitar",
    "keyboard",
    "percussion",
    "strings",
    "synth",
    "fx",
    "brass",
    "woodwinds",
)


@dataclass(frozen=True)
class Track:
    """One generated song of a music-family task."""

    audio_id: str
    title: str
    prompt: str
    tags: str
    model_name: str
    duration: float

    @property
    def audio_name(self) -> str:
        return f"{self.audio_id}.mp3"

    @property
    def image_name(self) -> str:
        return f"{self.audio_id}.jpeg"


@dataclass
class Task:
    """One accepted submit. Immutable but for what the callback delivery learns later."""

    task_id: str
    index: int
    kind: Kind
    path: str
    params: dict[str, Any]
    submitted_at: float
    draws: TaskDraws
    plan: Plan
    tracks: tuple[Track, ...]
    callback_url: str
    cost: int
    #: scaled seconds record-info lags behind each stage
    lag: float
    source_task_id: str | None = None
    source_audio_id: str | None = None
    faults: tuple[str, ...] = ()
    #: when the terminal callback gave up (record-info then says CALLBACK_EXCEPTION)
    callback_exception_at: float | None = None
    #: artifact names whose URL record-info already handed out once (``expire`` fault)
    handed_out: set[str] = field(default_factory=set)
    #: a lyrics task's variants, (title, text)
    texts: tuple[tuple[str, str], ...] = ()

    # -- timing ------------------------------------------------------------------------
    def reached_at(self, index: int) -> float:
        """When the upstream reaches stage ``index`` (and sends its callback)."""
        return self.submitted_at + self.plan.stages[index].offset

    def visible_at(self, index: int) -> float:
        """When record-info starts showing stage ``index``."""
        return self.reached_at(index) + self.lag

    @property
    def completed_at(self) -> float:
        """The moment record-info starts answering the terminal status."""
        return self.visible_at(len(self.plan.stages) - 1)

    def visible_index(self, now: float) -> int | None:
        """The last stage record-info shows at ``now`` (compared exactly as the ledger)."""
        reached = None
        for index in range(len(self.plan.stages)):
            if self.visible_at(index) <= now:
                reached = index
        return reached

    def reached_index(self, now: float) -> int | None:
        reached = None
        for index in range(len(self.plan.stages)):
            if self.reached_at(index) <= now:
                reached = index
        return reached

    def status(self, now: float) -> str:
        """The status (or successFlag) record-info answers at ``now``."""
        index = self.visible_index(now)
        if index is None:
            return PENDING
        stage = self.plan.stages[index]
        if (
            stage.terminal
            and stage.status == SUCCESS
            and self.callback_exception_at is not None
            and now >= self.callback_exception_at
        ):
            return CALLBACK_EXCEPTION
        return stage.status

    @property
    def succeeds(self) -> bool:
        return self.plan.failure is None

    def track_level(self, track: int, index: int | None) -> int:
        """0: text only, 1: streaming (no download yet), 2: complete, at stage ``index``."""
        if index is None or self.plan.failure is not None:
            return 0
        status = self.plan.stages[index].status
        if status == SUCCESS:
            return 2
        if status == FIRST_SUCCESS:
            return 2 if track == 0 else 1
        return 0

    def audio_complete(self, audio_id: str, now: float) -> bool:
        """Whether the upstream has finished track ``audio_id`` (its file exists)."""
        for number, track in enumerate(self.tracks):
            if track.audio_id == audio_id:
                return self.track_level(number, self.reached_index(now)) == 2
        return False

    # -- artifacts ----------------------------------------------------------------------
    def result_names(self) -> dict[str, str]:
        """Artifact names of a successful non-music task, by result field (camelCase)."""
        if self.kind == "music_video":
            return {"videoUrl": f"{self.task_id}.mp4"}
        if self.kind == "wav":
            return {"audioWavUrl": f"{self.task_id}.wav"}
        if self.kind == "vocal_removal":
            origin = f"{self.source_audio_id}.mp3"
            if self.params.get("type") == "split_stem":
                names = {"originUrl": origin}
                names.update({f"{stem}Url": f"{self.task_id}-{stem}.mp3" for stem in SPLIT_STEMS})
                return names
            return {
                "originUrl": origin,
                "instrumentalUrl": f"{self.task_id}-instrumental.mp3",
                "vocalUrl": f"{self.task_id}-vocal.mp3",
            }
        return {}

    @property
    def is_music(self) -> bool:
        return self.kind in MUSIC_FAMILY
