"""Check a daemon's database and files against the sandbox ledger (the upstream's word).

Used by ``scripts/chaos`` and the crash-window tests. The promises checked (docs/durability.md):

* every job is in the state the upstream decided: ``completed`` if its task succeeded,
  ``failed`` if its task failed or no submit of it was ever accepted; ``uncertain`` jobs are a
  separate category (a violation unless the caller allows them); a pipeline job failed at
  stage ``dependency`` was never submitted and its parent (or for_each child) did not
  complete; a for_each job is ``completed`` exactly when every child is;
* zero duplicate submissions: every accepted submit is mapped to its job by the callback token
  in its ``callBackUrl``; a job with two accepted submits is a violation unless it went through
  ``uncertain -> queued`` (the resubmit policy or operator), which is counted separately;
* every callback the daemon answered 2xx is in that job's event log;
* every stored file's sha256 equals the recorded one and one the upstream served;
* no temporary (``*.part``) files are left.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.domain import ArtifactState, Job
from orchestrator.states import JobState
from orchestrator.stores.sql import SQLStore
from orchestrator.tokens import CALLBACK_PREFIX, hash_token


@dataclass
class Report:
    jobs: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    accepted_submits: int = 0
    resubmitted_after_uncertain: list[str] = field(default_factory=list)
    callbacks_2xx: int = 0
    callback_events: int = 0
    files_checked: int = 0
    uncertain: list[str] = field(default_factory=list)
    wrong_state: list[str] = field(default_factory=list)
    duplicate_submits: list[str] = field(default_factory=list)
    unowned_submits: list[str] = field(default_factory=list)
    missing_callbacks: list[str] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)

    def violations(self, *, allow_uncertain: bool = False) -> list[str]:
        found = [
            *(f"wrong state: {x}" for x in self.wrong_state),
            *(f"paid twice: {x}" for x in self.duplicate_submits),
            *(f"accepted submit no job owns: {x}" for x in self.unowned_submits),
            *(f"2xx callback missing from the event log: {x}" for x in self.missing_callbacks),
            *(f"file: {x}" for x in self.bad_files),
            *(f"temporary file left: {x}" for x in self.temp_files),
        ]
        if not allow_uncertain:
            found += [f"still uncertain: {x}" for x in self.uncertain]
        return found

    def table(self) -> str:
        rows = [
            ("jobs", str(self.jobs)),
            *(
                (f"  {state}", str(n))
                for state, n in sorted(self.by_state.items(), key=lambda kv: kv[0])
            ),
            ("accepted submits (ledger)", str(self.accepted_submits)),
            ("resubmitted after uncertain", str(len(self.resubmitted_after_uncertain))),
            ("duplicate submits", str(len(self.duplicate_submits))),
            ("callbacks answered 2xx", str(self.callbacks_2xx)),
            ("  missing from event logs", str(len(self.missing_callbacks))),
            ("files verified (sha256)", str(self.files_checked)),
            ("  bad files", str(len(self.bad_files))),
            ("temporary files left", str(len(self.temp_files))),
            ("jobs not in the upstream's state", str(len(self.wrong_state))),
            ("uncertain jobs", str(len(self.uncertain))),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value:>7}" for name, value in rows)


def _token(url: str | None) -> str | None:
    if not url or CALLBACK_PREFIX not in url:
        return None
    return url.rsplit(CALLBACK_PREFIX, 1)[1].split("?", 1)[0].strip("/") or None


def check(
    database_url: str,
    artifacts_dir: Path,
    ledger: dict[str, Any],
    *,
    ignore_task_ids: frozenset[str] = frozenset(),
) -> Report:
    """Compare the database at ``database_url`` and the files with ``ledger``."""
    report = Report()
    store = SQLStore(database_url)
    try:
        jobs = store.list_jobs()
        events = {job.id: store.events(job.id) for job in jobs}
        job_by_token: dict[str, Job | None] = {}

        def owner(url: str | None) -> Job | None:
            token = _token(url)
            if token is None:
                return None
            if token not in job_by_token:
                found = store.find_by_token(hash_token(token))
                job_by_token[token] = found.job if found is not None else None
            return job_by_token[token]

        # --- submits: one accepted submit per job, unless resubmitted after uncertain
        landed: dict[int, list[str]] = {}
        for entry in ledger["submits"]:
            if entry.get("outcome") != "accepted" or entry["taskId"] in ignore_task_ids:
                continue
            report.accepted_submits += 1
            params = entry.get("params")
            url = params.get("callBackUrl") if isinstance(params, dict) else None
            job = owner(url)
            if job is None:
                report.unowned_submits.append(str(entry["taskId"]))
                continue
            landed.setdefault(job.id, []).append(entry["taskId"])

        for job in jobs:
            report.jobs += 1
            report.by_state[job.state.value] += 1
            log = events[job.id]
            resubmits = sum(
                1
                for e in log
                if e.from_state == JobState.UNCERTAIN and e.to_state == JobState.QUEUED
            )
            retries = sum(1 for e in log if e.type == "retry_requested")
            tasks = landed.get(job.id, [])
            if len(tasks) > 1:
                if len(tasks) - 1 <= resubmits + retries:
                    report.resubmitted_after_uncertain.append(job.key)
                else:
                    report.duplicate_submits.append(f"{job.key}: {tasks}")
            if job.for_each is not None or (job.error and job.error.stage == "dependency"):
                _check_pipeline(job, tasks, {j.key: j for j in jobs}, report)
                continue
            _check_state(job, tasks, ledger, report, resubmitted=resubmits > 0)

        # --- callbacks answered 2xx are in the job's event log
        answered: Counter[int] = Counter()
        for entry in ledger["callbacks"]:
            status = entry.get("status")
            if not isinstance(status, int) or not 200 <= status < 300:
                continue
            job = owner(entry.get("url"))
            if job is None:
                continue  # not one of ours (a source task's callback)
            report.callbacks_2xx += 1
            answered[job.id] += 1
        keys = {job.id: job.key for job in jobs}
        for job_id, n in answered.items():
            logged = sum(
                1
                for e in events[job_id]
                if e.source == "callback" and e.type == "callback_received"
            )
            report.callback_events += logged
            if logged < n:
                report.missing_callbacks.append(
                    f"{keys[job_id]}: {n} answered 2xx, {logged} logged"
                )

        # --- files
        served = {a["sha256"] for a in ledger["artifacts"].values() if a.get("sha256")}
        for job in jobs:
            for artifact in job.artifacts:
                if artifact.state != ArtifactState.STORED:
                    continue
                report.files_checked += 1
                path = Path(artifact.path or "")
                if not path.is_file():
                    report.bad_files.append(f"{job.key}/{artifact.name}: missing")
                    continue
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest != artifact.sha256 or len(data) != artifact.bytes:
                    report.bad_files.append(f"{job.key}/{artifact.name}: not what was recorded")
                elif digest not in served:
                    report.bad_files.append(f"{job.key}/{artifact.name}: not what was served")
        report.temp_files = sorted(str(p) for p in Path(artifacts_dir).rglob("*.part"))
    finally:
        store.close()
    return report


def _check_pipeline(job: Job, tasks: list[str], jobs: dict[str, Job], report: Report) -> None:
    """A for_each job, or a job its pipeline failed: nothing of its own was submitted, and its
    state follows from its parents (or its children)."""
    if tasks or job.task_id is not None:
        report.wrong_state.append(f"{job.key}: a pipeline job with a submit of its own {tasks}")
        return
    children = (job.result or {}).get("children") if job.for_each else None
    if job.state == JobState.COMPLETED:
        if children is None or any(
            jobs.get(c) is None or jobs[c].state != JobState.COMPLETED for c in children
        ):
            report.wrong_state.append(f"{job.key}: completed, but not every child is")
        return
    if job.state == JobState.FAILED:
        above = list(children or ()) + list(job.parents)
        ended = [k for k in above if jobs.get(k) is None or jobs[k].state != JobState.COMPLETED]
        if not ended:
            report.wrong_state.append(
                f"{job.key}: failed at dependency, yet all it needs completed"
            )
        return
    if job.state != JobState.CANCELLED:
        report.wrong_state.append(f"{job.key}: {job.state.value} after the run settled")


def _check_state(
    job: Job, tasks: list[str], ledger: dict[str, Any], report: Report, *, resubmitted: bool
) -> None:
    state = job.state
    if state == JobState.UNCERTAIN:
        report.uncertain.append(job.key)
        return
    if state == JobState.CANCELLED:
        return
    if job.task_id is None:
        # never accepted: a final submit error is the upstream's decision
        ok = state == JobState.FAILED and job.error is not None and job.error.stage == "submit"
        if tasks and not resubmitted:
            ok = False  # a submit landed but the job never learnt it
        if not ok:
            report.wrong_state.append(f"{job.key}: {state.value} with no taskId (landed: {tasks})")
        return
    if job.task_id not in tasks:
        report.wrong_state.append(f"{job.key}: taskId {job.task_id} is not one of its submits")
    task = ledger["tasks"].get(job.task_id)
    if task is None:
        report.wrong_state.append(f"{job.key}: taskId {job.task_id} unknown upstream")
        return
    expected = JobState.COMPLETED if task["terminal_status"] == "SUCCESS" else JobState.FAILED
    if state != expected:
        report.wrong_state.append(
            f"{job.key}: {state.value}, upstream decided {task['terminal_status']}"
            f" (error: {job.error})"
        )
