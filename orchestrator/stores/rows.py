"""Rows <-> domain records, derived from one place: the fields of :class:`Job`.

Every field of :class:`~orchestrator.domain.Job` but ``artifacts`` is a column of ``jobs``
with the same name (checked when this module loads); only the few that are not plain values
are converted here (the state, the JSON ones, the error).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import Any, Final

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping

from orchestrator.domain import Artifact, ArtifactState, Event, Job, JobError
from orchestrator.durations import DurationSample
from orchestrator.states import JobState
from orchestrator.stores.records import canonical, dumps
from orchestrator.stores.tables import ARTIFACTS, JOBS

A = ARTIFACTS.c

#: Ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's bound-parameter limits.
CHUNK: Final = 500


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    """``ids`` in lists of at most :data:`CHUNK`, one ``IN (...)`` each."""
    listed = list(ids)
    for start in range(0, len(listed), CHUNK):
        yield listed[start : start + CHUNK]


#: the store's own columns, not the job's
LEASE_COLUMNS: Final = ("lease_owner", "lease_expires_at")
#: Job fields stored as columns of the same name
JOB_COLUMNS: Final = tuple(f.name for f in fields(Job) if f.name != "artifacts")
#: columns :meth:`SQLStore.apply` may change (id, key and created_at never change; version
#: and the lease are the store's own)
MUTABLE: Final = tuple(c for c in JOB_COLUMNS if c not in ("id", "key", "created_at", "version"))

_missing = set(JOB_COLUMNS) ^ ({c.name for c in JOBS.columns} - set(LEASE_COLUMNS))
_missing |= {f.name for f in fields(Artifact)} - {c.name for c in ARTIFACTS.columns}
if _missing:  # pragma: no cover - a schema and a record out of step is a programming error
    raise RuntimeError(f"the tables and the domain records disagree on: {sorted(_missing)}")


def job_values(job: Job) -> dict[str, Any]:
    """The job as column values (the id only once it has one)."""
    values = {name: getattr(job, name) for name in JOB_COLUMNS}
    values["state"] = job.state.value
    values["params"] = canonical(job.params)
    values["result"] = dumps(job.result) if job.result is not None else None
    values["error"] = dumps(job.error.to_json()) if job.error is not None else None
    values["timeline"] = dumps(job.timeline) if job.timeline is not None else None
    values["parents"] = dumps(list(job.parents)) if job.parents else None
    values["template"] = dumps(job.template) if job.template is not None else None
    del values["id"]
    return values


def job_from_row(row: RowMapping, artifacts: tuple[Artifact, ...]) -> Job:
    values = {name: row[name] for name in JOB_COLUMNS}
    values["state"] = JobState(row["state"])
    values["params"] = json.loads(row["params"])
    values["result"] = json.loads(row["result"]) if row["result"] is not None else None
    values["timeline"] = json.loads(row["timeline"]) if row["timeline"] is not None else None
    values["parents"] = tuple(json.loads(row["parents"])) if row["parents"] is not None else ()
    values["template"] = json.loads(row["template"]) if row["template"] is not None else None
    error = json.loads(row["error"]) if row["error"] is not None else None
    values["error"] = (
        JobError(error["stage"], error.get("code"), error["message"], error.get("watcher"))
        if error
        else None
    )
    return Job(**values, artifacts=artifacts)


def load_artifacts(conn: Connection, job_ids: Iterable[int]) -> dict[int, tuple[Artifact, ...]]:
    """Artifacts of the given jobs, in the order they were first recorded."""
    found: dict[int, list[Artifact]] = {}
    for chunk in chunks(job_ids):
        query = select(ARTIFACTS).where(A.job_id.in_(chunk)).order_by(A.job_id, A.id)
        for row in conn.execute(query).mappings():
            found.setdefault(row["job_id"], []).append(artifact_from_row(row))
    return {job_id: tuple(artifacts) for job_id, artifacts in found.items()}


def jobs_with_artifacts(conn: Connection, rows: Sequence[RowMapping]) -> list[Job]:
    artifacts = load_artifacts(conn, (row["id"] for row in rows))
    return [job_from_row(row, artifacts.get(row["id"], ())) for row in rows]


# --- rows <-> records -------------------------------------------------------------------------


#: Artifact fields stored as columns of ``artifacts`` with the same name
ARTIFACT_COLUMNS: Final = tuple(f.name for f in fields(Artifact))


def artifact_values(job_id: int, artifact: Artifact) -> dict[str, Any]:
    values = {name: getattr(artifact, name) for name in ARTIFACT_COLUMNS}
    values["state"] = ArtifactState(artifact.state).value
    return {"job_id": job_id, **values}


def artifact_from_row(row: RowMapping) -> Artifact:
    values = {name: row[name] for name in ARTIFACT_COLUMNS}
    values["state"] = ArtifactState(row["state"])
    return Artifact(**values)


def sample_from_row(row: RowMapping) -> DurationSample:
    def bracket(stage: str) -> tuple[float, float] | None:
        lo, hi = row[f"{stage}_lo"], row[f"{stage}_hi"]
        return None if lo is None or hi is None else (float(lo), float(hi))

    return DurationSample(
        kind=row["kind"],
        model=row["model"],
        recorded_at=row["recorded_at"],
        done=(float(row["done_lo"]), float(row["done_hi"])),
        text=bracket("text"),
        first=bracket("first"),
    )


def event_from_row(row: RowMapping) -> Event:
    return Event(
        id=row["id"],
        job_id=row["job_id"],
        at=row["at"],
        source=row["source"],
        type=row["type"],
        from_state=JobState(row["from_state"]) if row["from_state"] is not None else None,
        to_state=JobState(row["to_state"]) if row["to_state"] is not None else None,
        payload=json.loads(row["payload"]),
        note=row["note"],
        node=row["node"],
    )
