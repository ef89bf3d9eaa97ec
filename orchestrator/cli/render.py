"""Terminal output for the CLI (rich tables; plain text when not a terminal)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from orchestrator.clock import isoformat, utcnow
from orchestrator.domain import Job, Notification
from orchestrator.service import JobDetail, tree_order
from orchestrator.states import JobState

STYLES = {
    JobState.COMPLETED: "green",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "bold red",
    JobState.UNCERTAIN: "bold black on yellow",
    JobState.TIMED_OUT: "red",
    JobState.CANCELLED: "dim",
    JobState.RUNNING: "cyan",
    JobState.PENDING: "cyan",
    JobState.WAITING: "magenta",
}


def _console(stream: TextIO | None = None) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=False, width=160)


def _ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (utcnow() - when).total_seconds()
    if seconds < 0:
        return f"in {-seconds:.0f}s"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _state(job: Job) -> str:
    style = STYLES.get(job.state, "")
    label = job.state.value.upper() if job.state == JobState.UNCERTAIN else job.state.value
    return f"[{style}]{label}[/]" if style else label


def status_table(jobs: list[Job], hold: str | None = None) -> None:
    """The jobs as a table, pipelines drawn as trees; ``hold`` says why queued jobs wait
    (the credit guard)."""
    console = _console()
    if not jobs:
        console.print("no jobs")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("key", "kind", "state", "upstream", "task", "polls", "cb", "updated", "note"):
        table.add_column(column, no_wrap=column != "note")
    for job, prefix in tree_order(jobs):
        note = job.error.message if job.error else ""
        if job.state == JobState.UNCERTAIN:
            note = "needs a decision: orchestrator resolve " + job.key
        elif job.state == JobState.WAITING:
            note = "waiting for " + ", ".join(job.parents)
        elif job.state == JobState.QUEUED and hold:
            note = hold
        table.add_row(
            prefix + job.key,
            job.kind,
            _state(job),
            job.upstream_status or "-",
            (job.task_id or "-")[:12],
            str(job.polls),
            str(job.callbacks),
            _ago(job.updated_at),
            note[:60],
        )
    console.print(table)
    if hold:
        console.print(f"[bold yellow]submitting held[/]: {hold}")
    uncertain = sum(1 for j in jobs if j.state == JobState.UNCERTAIN)
    if uncertain:
        console.print(
            f"[bold yellow]{uncertain} job(s) UNCERTAIN[/]: the submit may have been paid for; "
            "see `orchestrator show KEY`"
        )


def notifications_table(rows: Sequence[Notification], disabled: Mapping[str, Any]) -> None:
    console = _console()
    for name, why in sorted(disabled.items()):
        reason = why.get("reason") if isinstance(why, dict) else why
        console.print(
            f"[bold red]target {name} disabled[/]: {reason} (orchestrator notify enable {name})"
        )
    if not rows:
        console.print("no notifications")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "webhook id", "target", "event", "job", "state", "tries", "next", "last"):
        table.add_column(column, no_wrap=column != "last")
    for row in rows:
        last = row.last_error or (str(row.last_status) if row.last_status is not None else "")
        table.add_row(
            str(row.id),
            row.webhook_id,
            row.target,
            row.event,
            str((row.body.get("data") or {}).get("key") or "-"),
            row.state.value,
            str(row.attempts),
            _ago(row.next_attempt_at) if row.state.value == "pending" else "-",
            last[:60],
        )
    console.print(table)


def show(detail: JobDetail) -> None:
    job = detail.job
    console = _console()
    console.print(f"[bold]{job.key}[/]  {job.kind}  {_state(job)}")
    console.print(f"  why:       {detail.why}")
    for label, value in (
        ("provider", job.provider),
        ("task id", job.task_id or "-"),
        ("parents", ", ".join(job.parents) or "-"),
        ("children", ", ".join(detail.children) or "-"),
        ("upstream", job.upstream_status or "-"),
        ("params", _short(job.params)),
        ("next poll", isoformat(job.next_poll_at) or "-"),
        ("because", (job.poll_note or "-") if job.next_poll_at else "-"),
        ("deadline", isoformat(job.deadline_at) or "-"),
        (
            "counts",
            f"{job.polls} polls, {job.callbacks} callbacks, {job.submit_attempts} submits"
            f" (attempt {job.attempt})",
        ),
        ("created", isoformat(job.created_at)),
        ("finished", isoformat(job.finished_at) or "-"),
    ):
        console.print(f"  {label + ':':<10} {value}")
    if job.error:
        console.print(
            f"  error:     [red]{job.error.stage}[/] {job.error.code} {job.error.message}"
        )
    if job.artifacts:
        table = Table(title="artifacts", show_edge=False)
        for column in ("name", "state", "bytes", "sha256", "path"):
            table.add_column(column)
        for a in job.artifacts:
            table.add_row(
                a.name, a.state.value, str(a.bytes or "-"), (a.sha256 or "-")[:16], a.path or "-"
            )
        console.print(table)
    if detail.notifications:
        table = Table(title="notifications", show_edge=False)
        for column in ("webhook id", "target", "event", "state", "attempts"):
            table.add_column(column)
        for row, attempts in detail.notifications:
            tries = ", ".join(
                f"{(isoformat(a.at) or '')[11:19]} {a.status if a.status is not None else a.error}"
                for a in attempts
            )
            table.add_row(row.webhook_id, row.target, row.event, row.state.value, tries or "-")
        console.print(table)
    table = Table(title="events", show_edge=False)
    for column in ("at", "node", "source", "observation", "transition", "note"):
        table.add_column(column)
    for event in detail.events:
        if event.to_state and event.from_state != event.to_state:
            transition = (
                f"{event.from_state.value if event.from_state else ''} -> {event.to_state.value}"
            )
        else:
            transition = "-"
        table.add_row(
            (isoformat(event.at) or "")[11:23],
            event.node or "-",
            event.source,
            event.type,
            transition,
            event.note,
        )
    console.print(table)


def _short(value: Any, limit: int = 100) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def progress_line(job: Job, stream: TextIO) -> None:
    stored = sum(1 for a in job.artifacts if a.bytes is not None)
    files = f" files {stored}/{len(job.artifacts)}" if job.artifacts else ""
    upstream = f" upstream={job.upstream_status}" if job.upstream_status else ""
    print(
        f"{isoformat(utcnow())} {job.key}: {job.state.value}{upstream}{files}",
        file=stream,
        flush=True,
    )
