"""Adaptive polling end to end: `orchestrator run` learns durations from a first batch and
polls a second batch fewer times than the fixed interval would, with no callbacks at all.

The sandbox runs log-normal durations (FIRST_SUCCESS ~40 s, SUCCESS ~10 s later) at time
scale 0.02, so the daemon's knobs are scaled by the same factor (a 30 s interval is 0.6 s).
The ledger is the upstream's word on how often each task was polled and when it finished.
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any

import pytest

from orchestrator.sandbox.durations import parse_durations
from tests.acceptance.harness import Deployment, submit_song, wait_for

pytestmark = pytest.mark.timeout(180)

SCALE = 0.02
INTERVAL = 30.0 * SCALE
BATCH = 12


def _completed(deployment: Deployment, keys: list[str]) -> list[dict[str, Any]] | None:
    jobs = {j["key"]: j for j in deployment.jobs()}
    done = [jobs[k] for k in keys if k in jobs and jobs[k]["state"] == "completed"]
    return done if len(done) == len(keys) else None


def _fixed_cost(task: dict[str, Any]) -> int:
    """Polls a fixed-interval poller spends on a task: the first at one interval, then one per
    interval until it sees the task finished."""
    return max(1, math.ceil((task["completed_at"] - task["submitted_at"]) / INTERVAL))


def test_a_daemon_learns_from_a_first_batch_and_polls_the_second_fewer_times(
    start_sandbox: Any, deploy: Any
) -> None:
    sandbox = start_sandbox(
        time_scale=SCALE, faults="drop=1", durations=parse_durations("lognormal")
    )
    deployment: Deployment = deploy(
        sandbox.url,
        interval_s=INTERVAL,
        polling=f"""strategy = "adaptive"
min_gap_s = {2.0 * SCALE}
safety_margin_s = {5.0 * SCALE}
min_samples = 5
""",
    )
    deployment.start_daemon()
    first = [f"warm-{i}" for i in range(BATCH)]
    for key in first:
        submit_song(deployment, key)
    wait_for(lambda: _completed(deployment, first), 90, "the first batch completed")

    # the learned history is in the database: one sample per succeeded job
    with sqlite3.connect(deployment.dir / "var" / "orchestrator.db") as db:
        (samples,) = db.execute("SELECT count(*) FROM durations").fetchone()
    assert samples == BATCH
    wait_for(lambda: "durations_learned" in deployment.logs(), 30, "the learner's refresh")

    second = [f"learned-{i}" for i in range(BATCH)]
    for key in second:
        submit_song(deployment, key)
    notes: set[str] = set()

    def second_done() -> list[dict[str, Any]] | None:
        with sqlite3.connect(deployment.dir / "var" / "orchestrator.db") as db:
            rows = db.execute(
                "SELECT poll_note FROM jobs WHERE key LIKE 'learned-%'"
                " AND next_poll_at IS NOT NULL AND poll_note IS NOT NULL"
            )
            notes.update(note for (note,) in rows)
        return _completed(deployment, second)

    jobs = wait_for(second_done, 90, "the second batch completed", every=0.02)
    ledger = sandbox.ledger()

    polls = sum(ledger["polls"].get(j["task_id"], 0) for j in jobs)
    fixed = sum(_fixed_cost(ledger["tasks"][j["task_id"]]) for j in jobs)
    assert polls < fixed, f"second batch: {polls} polls, a fixed {INTERVAL} s poller {fixed}"
    assert all(j["callbacks"] == 0 for j in jobs)  # nothing but polls told the daemon
    # each poll of the second batch was placed from what was learned, and said why (what
    # `show` prints as the next poll's reason)
    learned = [n for n in notes if n.startswith("adaptive: ") and "budgeted polls used" in n]
    assert learned, f"no adaptive schedule seen: {sorted(notes)}"
    assert re.search(r"of \d+ learned generate_music jobs at [A-Z_]+ finished within", learned[0])
