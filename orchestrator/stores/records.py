"""What every store backend shares: canonical JSON, the `created` event's source, UTC
normalisation, and the rule that the same key must mean the same job.

Nothing here knows about rows or SQL: the SQL store (:mod:`orchestrator.stores.sql`) and the
in-memory store (:mod:`orchestrator.stores.memory`) both use it, so they agree to the byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final, get_args, get_type_hints

from orchestrator.clock import ensure_utc
from orchestrator.domain import Job, NewJob
from orchestrator.exceptions import JobKeyConflict, StoreError

#: Source of the `created` event (NewJob carries none: jobs come from config, CLI, scripts
#: or the HTTP API, all on the operator's behalf).
CREATED_SOURCE: Final = "operator"


def dumps(value: Any) -> str:
    # strict: NaN or Infinity would be unreadable for PostgreSQL's JSON and other programs
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=False
    )


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def canonical(params: Mapping[str, Any]) -> str:
    """Params as canonical JSON: equal params give equal text."""
    try:
        return dumps(params)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"params are not JSON: {exc}") from exc


#: the Job fields that hold a datetime, from its annotations (no second list to keep)
_JOB_DATETIMES: Final = tuple(
    name for name, hint in get_type_hints(Job).items() if datetime in (hint, *get_args(hint))
)


def in_utc(job: Job) -> Job:
    """``job`` with every datetime in UTC, as it would read back from the database."""
    changes: dict[str, Any] = {}
    for name in _JOB_DATETIMES:
        value = getattr(job, name)
        if value is not None and value.tzinfo is not UTC:
            changes[name] = ensure_utc(value)
    if any(
        a.next_attempt_at is not None and a.next_attempt_at.tzinfo is not UTC for a in job.artifacts
    ):
        changes["artifacts"] = tuple(
            replace(a, next_attempt_at=ensure_utc(a.next_attempt_at))
            if a.next_attempt_at is not None
            else a
            for a in job.artifacts
        )
    return replace(job, **changes) if changes else job


def new_job_record(new: NewJob, job_id: int, now: datetime) -> Job:
    """The job ``new`` asks for, as first recorded (``queued``, or ``waiting`` for parents)."""
    params = json.loads(canonical(new.params))
    return Job(
        id=job_id,
        key=new.key,
        kind=new.kind,
        provider=new.provider,
        state=new.initial_state,
        params=params,
        created_at=now,
        updated_at=now,
        state_since=now,
        parents=tuple(new.after),
        for_each=new.for_each,
        template=params if new.template is not None else None,
    )


def created_payload(job: Job) -> dict[str, Any]:
    """The `created` event's payload."""
    payload: dict[str, Any] = {"kind": job.kind, "provider": job.provider, "params": job.params}
    if job.parents:
        payload["after"] = list(job.parents)
    if job.for_each:
        payload["for_each"] = job.for_each
    return payload


def same_job(existing: Job, new: NewJob) -> Job:
    """``existing`` if ``new`` asks for the same job; else :class:`JobKeyConflict`."""
    differences: list[str] = []
    if existing.kind != new.kind:
        differences.append(f"another kind ({existing.kind!r}, not {new.kind!r})")
    # a released job's params were resolved from its parents: compare what was written
    written = existing.template if existing.template is not None else existing.params
    if canonical(written) != canonical(new.params):
        differences.append(f"other params ({_params_difference(written, new.params)})")
    if existing.parents != tuple(new.after):
        differences.append(f"other parents ({', '.join(existing.parents) or 'none'})")
    if existing.for_each != new.for_each:
        differences.append(f"another for_each ({existing.for_each or 'none'})")
    if differences:
        raise JobKeyConflict(
            f"a job with key {new.key!r} already exists with {' and '.join(differences)}"
        )
    return existing


def _params_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Which top-level params differ, by name (values may be long or private)."""
    changed = sorted(k for k in old.keys() & new.keys() if dumps(old[k]) != dumps(new[k]))
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("changed", changed),
            ("added", sorted(new.keys() - old.keys())),
            ("missing", sorted(old.keys() - new.keys())),
        )
        if names
    ]
    return "; ".join(parts)


#: fields a change may not touch: the store's identity of the job and its own version
FIXED_FIELDS: Final = frozenset({"id", "key", "created_at", "version"})
_FIELDS: Final = frozenset(get_type_hints(Job))


def changed_job(job: Job, changes: Mapping[str, Any] | None) -> Job | None:
    """``job`` with ``changes`` applied (None: no changes), after checking them: only the
    job's own fields, never its identity, and artifact names unique."""
    if changes is None:
        return None
    bad = sorted(set(changes) - _FIELDS)
    if bad:
        raise ValueError(f"job {job.key!r}: no such field(s) {bad}")
    fixed = sorted(set(changes) & FIXED_FIELDS)
    if fixed:
        raise ValueError(f"job {job.key!r}: {fixed} never change")
    updated = replace(job, **changes)
    names = [a.name for a in updated.artifacts]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate artifact names in job {job.key!r}: {names}")
    return updated
