"""What the sandbox saw and did, for tests, benchmarks and chaos runs to count.

The ledger only appends; :meth:`Ledger.snapshot` copies it as JSON-ready data. The ``tasks``
section is computed by the engine (it depends on the moment it is asked), see
``Engine.ledger``. docs/sandbox.md describes every field.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from orchestrator.sandbox.payloads import iso

if TYPE_CHECKING:
    from orchestrator.sandbox.tasks import Task


class Ledger:
    """Thread-safe append-only record of submits, polls, callbacks, artifacts, refusals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._submits: list[dict[str, Any]] = []
            self._polls: dict[str, int] = defaultdict(int)
            self._poll_log: list[dict[str, Any]] = []
            self._callbacks: list[dict[str, Any]] = []
            self._artifacts: dict[str, dict[str, Any]] = {}
            self._rejected: list[dict[str, Any]] = []
            #: (taskId, callbackType) -> time its first attempt started
            self._first_sent: dict[tuple[str, str], float] = {}
            #: taskId -> time the first attempt of any of its callbacks started
            self._first_sent_task: dict[str, float] = {}
            #: (taskId, callbackType) of deliveries the receiver accepted (2xx)
            self._delivered: set[tuple[str, str]] = set()

    # -- recording ------------------------------------------------------------------------
    def submit(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._submits.append(entry)

    def poll(self, task_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self._polls[task_id] += 1
            self._poll_log.append(entry)

    def rejected(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._rejected.append(entry)

    def callback_attempt(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._callbacks.append(entry)
            key, started = (entry["taskId"], entry["stage"]), entry["time"]
            self._first_sent[key] = min(self._first_sent.get(key, started), started)
            task_id = entry["taskId"]
            if entry.get("ok"):
                self._delivered.add(key)
            self._first_sent_task[task_id] = min(
                self._first_sent_task.get(task_id, started), started
            )

    def artifact(self, name: str, info: dict[str, Any], *, expired: bool = False) -> None:
        """Count one hand-out of an artifact's URL (``expired``: the ``expire`` fault hit)."""
        with self._lock:
            entry = self._artifacts.get(name)
            if entry is None:
                entry = {
                    **info,
                    "handed_out": 0,
                    "handed_out_expired": 0,
                    "downloads": 0,
                    "refused": 0,
                }
                self._artifacts[name] = entry
            entry["handed_out"] += 1
            if expired:
                entry["handed_out_expired"] += 1

    def download(self, name: str, *, served: bool) -> None:
        with self._lock:
            entry = self._artifacts.get(name)
            if entry is not None:
                entry["downloads" if served else "refused"] += 1

    # -- reading --------------------------------------------------------------------------
    def first_sent(self, task_id: str, stage: str) -> float | None:
        with self._lock:
            return self._first_sent.get((task_id, stage))

    def delivered(self, task_id: str, stage: str) -> bool:
        """Whether some attempt of that stage's callback was accepted by the receiver."""
        with self._lock:
            return (task_id, stage) in self._delivered

    def first_sent_any(self, task_id: str) -> float | None:
        with self._lock:
            return self._first_sent_task.get(task_id)

    def polls_of(self, task_id: str) -> int:
        with self._lock:
            return self._polls.get(task_id, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "submits": copy.deepcopy(self._submits),
                "polls": dict(self._polls),
                "poll_log": copy.deepcopy(self._poll_log),
                "callbacks": copy.deepcopy(self._callbacks),
                "artifacts": copy.deepcopy(self._artifacts),
                "rejected": copy.deepcopy(self._rejected),
            }


def stamp(epoch: float) -> dict[str, Any]:
    """``{"time": epoch, "time_iso": ISO 8601}`` for a ledger entry."""
    return {"time": epoch, "time_iso": iso(epoch)}


def task_entry(task: Task, now: float, ledger: Ledger) -> dict[str, Any]:
    """One task as the ledger snapshot shows it: its plan, its stages, what was sent."""
    plan = task.plan
    done = now >= task.completed_at
    stages = []
    for index, stage in enumerate(plan.stages):
        sent = ledger.first_sent(task.task_id, stage.callback) if stage.callback else None
        stages.append(
            {
                "status": stage.status,
                "callbackType": stage.callback,
                "reached_at": task.reached_at(index),
                "visible_at": task.visible_at(index),
                "visible_at_iso": iso(task.visible_at(index)),
                "callback_dropped": index in plan.dropped,
                "callback_first_sent_at": sent,
            }
        )
    terminal = plan.terminal
    terminal_sent = (
        ledger.first_sent(task.task_id, terminal.callback) if terminal.callback else None
    )
    first_sent = ledger.first_sent_any(task.task_id)
    failure = plan.failure
    return {
        "kind": task.kind,
        "path": task.path,
        "index": task.index,
        "status": task.status(now),
        "terminal_status": terminal.status,
        "submitted_at": task.submitted_at,
        "submitted_at_iso": iso(task.submitted_at),
        "completed_at": task.completed_at if done else None,
        "completed_at_iso": iso(task.completed_at) if done else None,
        "planned_completed_at": task.completed_at,
        "first_callback_at": first_sent,
        "first_callback_at_iso": iso(first_sent),
        "terminal_callback_at": terminal_sent,
        "terminal_callback_at_iso": iso(terminal_sent),
        "callback_exception_at": task.callback_exception_at,
        "callback_url": task.callback_url,
        "error_code": failure.code if failure else None,
        "error_message": failure.message if failure else None,
        "faults": list(task.faults),
        "lag_s": task.lag,
        "stages": stages,
        "callbacks_planned": [
            {
                "stage": planned.callback,
                "copy": planned.copy,
                "early": planned.early,
                "due_at": task.submitted_at + planned.due,
            }
            for planned in plan.callbacks
        ],
        "polls": ledger.polls_of(task.task_id),
        "credits": task.cost,
        "audio_ids": [track.audio_id for track in task.tracks],
        "source_task_id": task.source_task_id,
        "source_audio_id": task.source_audio_id,
    }


def snapshot(
    ledger: Ledger,
    tasks: list[Task],
    now: float,
    *,
    config: dict[str, Any],
    credits: dict[str, int],
) -> dict[str, Any]:
    """``GET /_sandbox/ledger``: everything the upstream saw, and every task's story."""
    data = ledger.snapshot()
    return {
        "now": now,
        "now_iso": iso(now),
        "config": config,
        "credits": credits,
        "submits": data["submits"],
        "polls": data["polls"],
        "poll_log": data["poll_log"],
        "callbacks": data["callbacks"],
        "tasks": {task.task_id: task_entry(task, now, ledger) for task in tasks},
        "artifacts": data["artifacts"],
        "rejected": data["rejected"],
    }
