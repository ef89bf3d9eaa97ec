"""The outbox in SQL: notification rows written with a transition (inside its transaction),
leased by the sender, their attempts recorded (SQLAlchemy Core; SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from orchestrator.clock import ensure_utc
from orchestrator.domain import (
    NewNotification,
    Notification,
    NotificationAttempt,
    NotificationState,
)
from orchestrator.stores.records import dumps
from orchestrator.stores.tables import NOTIFICATION_ATTEMPTS, NOTIFICATIONS

N = NOTIFICATIONS.c
NA = NOTIFICATION_ATTEMPTS.c
PENDING = NotificationState.PENDING.value


def insert_rows(
    conn: Connection, rows: Sequence[NewNotification], job_id: int | None, now: datetime
) -> None:
    """Write ``rows`` in the caller's transaction (the transition's, or a ping's)."""
    if not rows:
        return
    conn.execute(
        insert(NOTIFICATIONS),
        [
            {
                "webhook_id": row.webhook_id,
                "target": row.target,
                "event": row.event,
                "job_id": job_id,
                "body": dumps(row.body),
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": ensure_utc(row.due_at),
                "created_at": ensure_utc(now),
            }
            for row in rows
        ],
    )


def from_row(row: RowMapping) -> Notification:
    return Notification(
        id=row["id"],
        webhook_id=row["webhook_id"],
        target=row["target"],
        event=row["event"],
        job_id=row["job_id"],
        body=json.loads(row["body"]),
        state=NotificationState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )


def due_ids(conn: Connection, now: datetime, limit: int, *, postgres: bool) -> list[int]:
    free = or_(N.lease_owner.is_(None), N.lease_expires_at <= now)
    query = (
        select(N.id)
        .where(N.state == PENDING, N.next_attempt_at <= now, free)
        .order_by(N.next_attempt_at, N.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    return list(conn.scalars(query))


def lease(
    conn: Connection, ids: Sequence[int], owner: str, now: datetime, lease_s: float
) -> list[Notification]:
    conn.execute(
        update(NOTIFICATIONS)
        .where(N.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
    )
    rows = conn.execute(select(NOTIFICATIONS).where(N.id.in_(ids), N.lease_owner == owner))
    position = {n: i for i, n in enumerate(ids)}
    return sorted((from_row(r) for r in rows.mappings()), key=lambda n: position[n.id])


def finish(
    conn: Connection,
    notification_id: int,
    owner: str,
    attempt: NotificationAttempt | None,
    state: NotificationState,
    next_attempt_at: datetime | None,
) -> bool:
    """Record an attempt (or none: a skip) and the row's next state, if ``owner`` holds it."""
    values: dict[str, Any] = {
        "state": state.value,
        "next_attempt_at": ensure_utc(next_attempt_at) if next_attempt_at else None,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if attempt is not None:
        values.update(
            attempts=N.attempts + 1,
            last_status=attempt.status,
            last_error=attempt.error,
        )
        if state == NotificationState.DELIVERED:
            values["delivered_at"] = ensure_utc(attempt.at)
    held = and_(N.id == notification_id, N.lease_owner == owner)
    if conn.execute(update(NOTIFICATIONS).where(held).values(values)).rowcount != 1:
        return False
    if attempt is not None:
        conn.execute(
            insert(NOTIFICATION_ATTEMPTS).values(
                notification_id=notification_id,
                at=ensure_utc(attempt.at),
                status=attempt.status,
                error=attempt.error,
                duration_s=attempt.duration_s,
            )
        )
    return True
