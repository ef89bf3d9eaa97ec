"""The engine with a moved clock: statuses switch exactly when the ledger says they do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.sandbox import SandboxConfig, parse_faults
from orchestrator.sandbox.engine import Engine
from orchestrator.sandbox.faults import RequestFaults
from orchestrator.sandbox.ratelimit import SlidingWindow

NONE = RequestFaults()
BODY = {
    "customMode": False,
    "instrumental": False,
    "model": "V4_5",
    "prompt": "a song",
    "callBackUrl": "http://127.0.0.1:9/never-called",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_engine(clock: Clock) -> Iterator[Any]:
    engines: list[Engine] = []

    def factory(**config: Any) -> Engine:
        engine = Engine(SandboxConfig(**config), clock=clock)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.close()


def submit(engine: Engine, body: dict[str, Any] | None = None) -> str:
    answer = engine.submit("generate_music", "/api/v1/generate", body or BODY, True, NONE)
    assert answer.code == 200, answer
    task_id: str = answer.data["taskId"]
    return task_id


def status(engine: Engine, task_id: str) -> str:
    answer = engine.detail("/api/v1/generate/record-info", task_id, True, NONE)
    value: str = answer.data["status"]
    return value


def test_status_changes_exactly_at_visible_at(make_engine: Any, clock: Clock) -> None:
    engine = make_engine()
    task_id = submit(engine)
    entry = engine.ledger_snapshot()["tasks"][task_id]
    assert entry["completed_at"] is None
    previous = "PENDING"
    for stage in entry["stages"]:
        clock.now = stage["visible_at"] - 1e-6
        assert status(engine, task_id) == previous
        clock.now = stage["visible_at"]
        assert status(engine, task_id) == stage["status"]
        previous = stage["status"]
    entry = engine.ledger_snapshot()["tasks"][task_id]
    assert entry["completed_at"] == entry["stages"][-1]["visible_at"]
    assert entry["completed_at_iso"].endswith("Z")


def test_lag_shifts_visibility_by_scaled_seconds(make_engine: Any, clock: Clock) -> None:
    engine = make_engine(faults=parse_faults("lag=10"), time_scale=0.5)
    task_id = submit(engine)
    for stage in engine.ledger_snapshot()["tasks"][task_id]["stages"]:
        assert stage["visible_at"] - stage["reached_at"] == pytest.approx(5.0)


def test_531_refund_arrives_with_the_failure(make_engine: Any, clock: Clock) -> None:
    engine = make_engine(credits=100)
    task_id = submit(engine, {**BODY, "prompt": "FAIL_531"})
    assert engine.balance(clock.now) == 88
    completed = engine.ledger_snapshot()["tasks"][task_id]["planned_completed_at"]
    clock.now = completed - 0.001
    assert engine.balance(clock.now) == 88
    clock.now = completed
    assert engine.balance(clock.now) == 100
    assert status(engine, task_id) == "GENERATE_AUDIO_FAILED"


def test_unknown_artifact_with_a_valid_signature_is_404(make_engine: Any, clock: Clock) -> None:
    engine = make_engine()
    query = engine._signer.query("/files/nothing.mp3", int(clock.now * 1000) + 60_000)
    expires, sig = (part.split("=")[1] for part in query.split("&"))
    assert engine.artifact("files", "nothing.mp3", expires, sig, None).status == 404


def test_task_ids_are_deterministic_per_seed(make_engine: Any) -> None:
    first = [submit(make_engine(seed=4)) for _ in range(1)]
    assert submit(make_engine(seed=4)) == first[0]
    assert submit(make_engine(seed=5)) != first[0]


def test_sliding_window() -> None:
    window = SlidingWindow(2, 10.0)
    assert window.admit("k", 0.0) and window.admit("k", 1.0)
    assert not window.admit("k", 2.0)
    assert window.retry_after("k", 2.0) == pytest.approx(8.0)
    assert window.admit("k", 10.0)
    assert window.admit("other", 2.0)
    assert SlidingWindow(0, 1.0).admit("k", 0.0)
