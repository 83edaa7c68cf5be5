"""The cloud's audit log: who did what, when, for which organisation (no secret in it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.cloud.models import audit_event
from hybridge.web.clock import aware


@dataclass(frozen=True)
class AuditEvent:
    at: dt.datetime
    org_id: str | None
    actor: str
    action: str
    detail: dict[str, Any]


def record(
    session: Session,
    now: dt.datetime,
    actor: str,
    action: str,
    detail: dict[str, Any],
    org_id: str | None = None,
) -> None:
    """Append one event; ``org_id`` ``None`` means cloud-wide (seen by every organisation)."""
    session.execute(
        sa.insert(audit_event).values(
            at=now, org_id=org_id, actor=actor, action=action, detail=detail
        )
    )


def events_for(session: Session, org_id: str, limit: int = 200) -> list[AuditEvent]:
    """The newest events of ``org_id`` and the cloud-wide ones, newest first."""
    rows = session.execute(
        sa.select(audit_event)
        .where(sa.or_(audit_event.c.org_id == org_id, audit_event.c.org_id.is_(None)))
        .order_by(audit_event.c.id.desc())
        .limit(limit)
    ).all()
    return [AuditEvent(aware(r.at), r.org_id, r.actor, r.action, dict(r.detail)) for r in rows]
