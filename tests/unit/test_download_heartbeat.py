"""The download lease heartbeat: renewed while bytes arrive, a lost lease stops the fetch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.daemon import downloader as module


class FakeStore:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.claims: list[tuple[int, str, float]] = []

    def claim_job(self, job_id: int, owner: str, now: object, lease_s: float) -> Any:
        self.claims.append((job_id, owner, lease_s))
        return self.answers.pop(0)


def _heartbeat(store: FakeStore, clock: list[float], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    fake = SimpleNamespace(store=store, owner="me", clock=lambda: None, lease_s=30.0)
    return module._Heartbeat(fake, 7)  # type: ignore[arg-type]


def test_renews_every_third_of_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = FakeStore([object(), object()]), [100.0]
    beat = _heartbeat(store, clock, monkeypatch)
    for t in (100.0, 105.0, 109.9):
        clock[0] = t
        beat.beat()
    assert store.claims == []
    clock[0] = 110.0
    beat.beat()
    clock[0] = 115.0
    beat.beat()
    clock[0] = 120.0
    beat.beat()
    assert store.claims == [(7, "me", 30.0), (7, "me", 30.0)]


def test_a_lost_lease_stops_the_download(monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = FakeStore([None]), [0.0]
    beat = _heartbeat(store, clock, monkeypatch)
    clock[0] = 10.0
    with pytest.raises(module._LeaseLost):
        beat.beat()
