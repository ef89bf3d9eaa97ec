"""The store's one write: compare-and-set of a job's changed fields with its event row, its
artifacts and a callback token, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, delete, insert, null, select, update

from orchestrator import faultpoints
from orchestrator.clock import ensure_utc
from orchestrator.domain import Job, NewEvent, NewNotification
from orchestrator.durations import KEPT_PER_GROUP, DurationSample
from orchestrator.exceptions import StaleJob
from orchestrator.stores.outbox import insert_rows as insert_outbox
from orchestrator.stores.postgres import upsert as postgres_upsert
from orchestrator.stores.records import changed_job, dumps, in_utc
from orchestrator.stores.rows import MUTABLE, artifact_values, job_values
from orchestrator.stores.sqlite import upsert as sqlite_upsert
from orchestrator.stores.tables import ARTIFACTS, CALLBACK_TOKENS, DURATIONS, EVENTS, JOBS

J = JOBS.c
DU = DURATIONS.c
A = ARTIFACTS.c


def apply_on(
    conn: Connection,
    job: Job,
    changes: Mapping[str, Any] | None,
    event: NewEvent,
    now: datetime,
    *,
    token_hash: str | None = None,
    release_owner: str | None = None,
    sample: DurationSample | None = None,
    outbox: Sequence[NewNotification] = (),
    postgres: bool,
    node: str | None = None,
) -> Job:
    now = ensure_utc(now)
    values: dict[str, Any] = {"version": job.version + 1}
    updated = changed_job(job, changes)
    artifacts_changed = False
    if updated is not None and changes:
        # only the columns the transition names (no diff of the old and new job)
        encoded = job_values(updated)
        values.update({name: encoded[name] for name in changes if name in MUTABLE})
        artifacts_changed = "artifacts" in changes and updated.artifacts != job.artifacts
    if release_owner is not None:
        held = J.lease_owner == release_owner
        values["lease_owner"] = case((held, null()), else_=J.lease_owner)
        values["lease_expires_at"] = case((held, null()), else_=J.lease_expires_at)
    cas = update(JOBS).where(J.id == job.id, J.version == job.version).values(values)
    event_row = {
        "job_id": job.id,
        "at": now,
        "source": event.source,
        "type": event.type,
        "from_state": job.state.value,
        "to_state": updated.state.value if updated is not None else None,
        "payload": dumps(event.payload),
        "note": event.note,
        "node": node,
    }
    if conn.execute(cas).rowcount != 1:
        raise StaleJob(
            f"job {job.key!r} changed since version {job.version}: reload and decide again"
        )
    conn.execute(insert(EVENTS).values(event_row))
    if updated is not None and artifacts_changed:
        write_artifacts(conn, job, updated, postgres=postgres)
    if token_hash is not None:
        attempt = (updated or job).attempt
        conn.execute(
            insert(CALLBACK_TOKENS).values(
                token_hash=token_hash, job_id=job.id, created_at=now, attempt=attempt
            )
        )
    if sample is not None:
        record_sample(conn, sample)
    insert_outbox(conn, outbox, job.id, now)  # the notifications commit with the transition
    faultpoints.reach("store.before_commit")
    return in_utc(replace(updated if updated is not None else job, version=job.version + 1))


def record_sample(conn: Connection, sample: DurationSample) -> None:
    """Add a learned sample; keep only the newest :data:`KEPT_PER_GROUP` of its group."""
    text, first = sample.text or (None, None), sample.first or (None, None)
    conn.execute(
        insert(DURATIONS).values(
            kind=sample.kind,
            model=sample.model,
            recorded_at=ensure_utc(sample.recorded_at),
            done_lo=sample.done[0],
            done_hi=sample.done[1],
            text_lo=text[0],
            text_hi=text[1],
            first_lo=first[0],
            first_hi=first[1],
        )
    )
    group = (DU.kind == sample.kind) & (DU.model == sample.model)
    cutoff = (
        select(DU.id).where(group).order_by(DU.id.desc()).offset(KEPT_PER_GROUP).limit(1)
    ).scalar_subquery()
    conn.execute(delete(DURATIONS).where(group, DU.id <= cutoff))


def write_artifacts(conn: Connection, job: Job, updated: Job, *, postgres: bool) -> None:
    """Make the job's artifact rows match ``updated.artifacts`` (by name)."""
    before = {a.name: a for a in job.artifacts}
    names = [a.name for a in updated.artifacts]
    if any(name not in names for name in before):
        gone = delete(ARTIFACTS).where(A.job_id == job.id)
        if names:
            gone = gone.where(A.name.not_in(names))
        conn.execute(gone)
    rows = [artifact_values(job.id, a) for a in updated.artifacts if before.get(a.name) != a]
    if not rows:
        return
    columns = [name for name in rows[0] if name not in ("job_id", "name")]
    upsert = postgres_upsert if postgres else sqlite_upsert
    conn.execute(upsert(ARTIFACTS, [A.job_id, A.name], columns), rows)
