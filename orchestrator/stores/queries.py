"""Which jobs are due in each queue, and which are free of a lease: SQLAlchemy Core only.

Each queue is an index range scan in due order (tables.py names the index for each).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select

from orchestrator.clock import ensure_utc
from orchestrator.domain import ArtifactState
from orchestrator.states import POLLABLE, JobState
from orchestrator.stores.base import (
    DEADLINE,
    DOWNLOAD,
    POLL,
    STALE_SUBMIT,
    SUBMIT,
    UNCERTAIN,
    Claim,
)
from orchestrator.stores.tables import ARTIFACTS, JOBS

J = JOBS.c
A = ARTIFACTS.c

POLLABLE_VALUES: Final = sorted(state.value for state in POLLABLE)
DEADLINE_VALUES: Final = [JobState.PENDING.value, JobState.RUNNING.value]


def lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(J.lease_owner.is_(None), J.lease_expires_at <= now)


def due_query(
    which: Claim, now: datetime, older_than: datetime | None, pollable: ColumnElement[bool]
) -> Select[int]:
    """Ids of lease-free jobs due in queue ``which``, the earliest due first."""
    free = lease_free(now)
    query = select(J.id)
    if which == SUBMIT:
        return query.where(
            J.state == JobState.QUEUED.value,
            or_(J.not_before.is_(None), J.not_before <= now),
            free,
        ).order_by(J.not_before.nulls_first(), J.id)
    if which == POLL:
        return query.where(pollable, J.next_poll_at <= now, free).order_by(J.next_poll_at, J.id)
    if which == DOWNLOAD:
        due_artifact = and_(
            A.job_id == J.id,
            A.state == ArtifactState.PENDING.value,
            A.next_attempt_at <= now,
        )
        earliest = select(func.min(A.next_attempt_at)).where(due_artifact).scalar_subquery()
        return query.where(
            J.state == JobState.SUCCEEDED.value, free, exists().where(due_artifact)
        ).order_by(earliest, J.id)
    if which == DEADLINE:
        return query.where(J.state.in_(DEADLINE_VALUES), J.deadline_at <= now, free).order_by(
            J.deadline_at, J.id
        )
    if which == STALE_SUBMIT:
        # a submitting job always had an owner: no lease at all is as stale as an expired one
        return query.where(J.state == JobState.SUBMITTING.value, free).order_by(
            J.lease_expires_at.nulls_first(), J.id
        )
    if which == UNCERTAIN:
        if older_than is None:
            raise ValueError("claiming UNCERTAIN jobs needs older_than (now - grace)")
        return query.where(
            J.state == JobState.UNCERTAIN.value,
            J.state_since <= ensure_utc(older_than),
            free,
        ).order_by(J.state_since, J.id)
    raise ValueError(f"unknown claim queue {which.name!r}")
