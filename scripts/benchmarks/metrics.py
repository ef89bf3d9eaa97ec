"""Figures from the sandbox ledger and the systems' own records."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from systems import System, key_of_params


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def submits_by_system(ledger: dict[str, Any], systems: list[System]) -> dict[str, dict[str, Any]]:
    """Per system: submits per job key, accepted task ids per key, every task id it owns."""
    out: dict[str, dict[str, Any]] = {
        s.name: {"submits": defaultdict(int), "accepted": defaultdict(list), "tasks": set()}
        for s in systems
    }
    for entry in ledger["submits"]:
        params = entry.get("params") or {}
        url = params.get("callBackUrl", "") if isinstance(params, dict) else ""
        key = key_of_params(params)
        for s in systems:
            if key and s.owns(url):
                out[s.name]["submits"][key] += 1
                if entry.get("taskId"):
                    out[s.name]["accepted"][key].append(entry["taskId"])
                    out[s.name]["tasks"].add(entry["taskId"])
    return out


def latency_figures(
    ledger: dict[str, Any], system: System, keys: list[str], owned: dict[str, Any]
) -> dict[str, Any]:
    outcomes = system.outcomes()
    tasks = ledger["tasks"]
    polls = ledger["polls"]
    requests = sum(owned["submits"].values()) + sum(polls.get(t, 0) for t in owned["tasks"])
    latencies, correct, lost, wrong = [], 0, 0, 0
    for key in keys:
        local = outcomes.get(key, {})
        accepted = owned["accepted"].get(key, [])
        task_id = local.get("task_id") or (accepted[-1] if accepted else None)
        task = tasks.get(task_id) if task_id else None
        state = local.get("state")
        if state is None:
            lost += 1
            continue
        if task is None:
            wrong += 1  # e.g. a baseline that gave up on a submit the upstream accepted
            continue
        expected = "succeeded" if task["terminal_status"] == "SUCCESS" else "failed"
        if state == expected:
            correct += 1
        else:
            wrong += 1
        if task.get("completed_at") and local.get("seen_at") and state == expected:
            latencies.append((local["seen_at"] - task["completed_at"]) * 1000)
    twice = sum(1 for key in keys if len(owned["accepted"].get(key, [])) > 1)
    # when the first poll after the outcome reached the upstream: the schedule's part of the
    # detection latency, without the system's own handling of the answer
    first_poll_after: dict[str, float] = {}
    for entry in ledger["poll_log"]:
        task = tasks.get(entry["taskId"])
        if task is None or entry["taskId"] not in owned["tasks"] or not task.get("completed_at"):
            continue
        if entry["time"] >= task["completed_at"] and entry["taskId"] not in first_poll_after:
            first_poll_after[entry["taskId"]] = (entry["time"] - task["completed_at"]) * 1000
    polled = list(first_poll_after.values())
    return {
        "poll_after_ms_mean": sum(polled) / len(polled) if polled else None,
        "jobs": len(keys),
        "latency_ms_p50": pct(latencies, 50),
        "latency_ms_mean": sum(latencies) / len(latencies) if latencies else None,
        "latency_ms_p99": pct(latencies, 99),
        "requests_per_job": requests / len(keys) if keys else None,
        "polls_per_job": sum(polls.get(t, 0) for t in owned["tasks"]) / len(keys) if keys else None,
        "correct": correct,
        "wrong": wrong,
        "lost": lost,
        "submitted_twice": twice,
    }


def lateness_figures(
    ledger: dict[str, Any], owned: dict[str, Any], interval_s: float, window_end: float
) -> dict[str, Any]:
    """Poll lateness: each poll's time minus when it was due (the previous poll, or the
    accepted submit, plus the interval). A poll due inside the window that has not happened
    by its end counts with its lateness so far (a lower bound), so falling behind shows."""
    submitted: dict[str, float] = {}
    for entry in ledger["submits"]:
        if entry.get("taskId") in owned["tasks"]:
            submitted[entry["taskId"]] = entry["time"]
    times: dict[str, list[float]] = defaultdict(list)
    for entry in ledger["poll_log"]:
        if entry["taskId"] in owned["tasks"] and entry["time"] <= window_end:
            times[entry["taskId"]].append(entry["time"])
    late: list[float] = []
    total_polls = 0
    for task_id, start in submitted.items():
        due = start + interval_s
        for t in sorted(times.get(task_id, [])):
            late.append(t - due)
            total_polls += 1
            due = t + interval_s
        if due < window_end:
            late.append(window_end - due)
    first_due = min(submitted.values(), default=window_end) + interval_s
    span = max(1e-9, window_end - first_due)
    return {
        "jobs": len(submitted),
        "lateness_s_p50": pct(late, 50),
        "lateness_s_p99": pct(late, 99),
        "polls": total_polls,
        # polls made / polls due, both over the window from the first due time to its end
        # (submits arrive in a burst, so more than N / 30 s polls fall due per second there)
        "polls_per_s": total_polls / span,
        "polls_per_s_due": len(late) / span,
        "polls_per_s_needed": len(submitted) / interval_s,
        "submit_span_s": (max(submitted.values()) - min(submitted.values())) if submitted else None,
    }
