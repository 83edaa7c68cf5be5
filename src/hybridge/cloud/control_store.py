"""What the control hub reads from and writes to the cloud database.

Writes from a thousand connections are batched by the hub (``ChannelEvent`` items, one
transaction per batch) so that a push acknowledged by every connector costs a handful of
commits, not one fsync per connector. Reads at connect time (who is this certificate?) are
one query each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.cloud import audit
from hybridge.cloud.control_models import connector_channel
from hybridge.cloud.models import ca_list_version, connector
from hybridge.web.clock import aware


@dataclass(frozen=True)
class ConnectorFacts:
    """What the hub needs about an authenticated connector."""

    connector_id: str
    org_id: str
    trust_mode: str
    status: str


@dataclass(frozen=True)
class ChannelEvent:
    """One thing that happened on a channel, to be written in the next batch.

    ``kind`` is one of ``online``, ``heartbeat``, ``push``, ``ack``, ``refusal``,
    ``offline``; ``data`` holds that kind's facts.
    """

    kind: str
    connector_id: str
    at: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelView:
    """A connector's channel state as the portal shows it."""

    online: bool
    offline_since: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    reported_sequence: int | None
    status: str | None
    alarms: tuple[str, ...]
    version: str | None
    last_refusal: dict[str, Any] | None


def connector_facts(session: Session, connector_id: str) -> ConnectorFacts | None:
    """The connector row's facts, or ``None`` when there is no such connector."""
    row = session.execute(
        sa.select(
            connector.c.id, connector.c.org_id, connector.c.trust_mode, connector.c.status
        ).where(connector.c.id == connector_id)
    ).first()
    if row is None:
        return None
    return ConnectorFacts(str(row.id), str(row.org_id), str(row.trust_mode), str(row.status))


def current_sequence(session: Session) -> int | None:
    """The newest CA-list sequence, or ``None`` before the first version."""
    value = session.execute(sa.select(sa.func.max(ca_list_version.c.sequence))).scalar()
    return None if value is None else int(value)


def statuses(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """``{connector id: status}`` for ``ids`` (missing ids are absent)."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(connector.c.id, connector.c.status).where(connector.c.id.in_(wanted))
    ).all()
    return {str(r.id): str(r.status) for r in rows}


def _ensure_row(session: Session, connector_id: str) -> None:
    exists = session.execute(
        sa.select(connector_channel.c.connector_id).where(
            connector_channel.c.connector_id == connector_id
        )
    ).first()
    if exists is None:
        session.execute(
            sa.insert(connector_channel).values(
                connector_id=connector_id, online=False, alarms=[], last_command_id=0
            )
        )


def next_command_id(session: Session, connector_id: str) -> int:
    """Reserve the next command id of ``connector_id`` (ids grow across cloud processes:
    the row update serialises concurrent reservations)."""
    _ensure_row(session, connector_id)
    session.execute(
        sa.update(connector_channel)
        .where(connector_channel.c.connector_id == connector_id)
        .values(last_command_id=connector_channel.c.last_command_id + 1)
    )
    value = session.execute(
        sa.select(connector_channel.c.last_command_id).where(
            connector_channel.c.connector_id == connector_id
        )
    ).scalar_one()
    return int(value)


def write_events(session: Session, events: Sequence[ChannelEvent], node: str) -> None:
    """Apply ``events`` in order (one transaction: the caller's)."""
    seen: set[str] = set()
    for event in events:
        if event.connector_id not in seen:
            _ensure_row(session, event.connector_id)
            seen.add(event.connector_id)
        _write(session, event, node)


def _write(session: Session, event: ChannelEvent, node: str) -> None:
    where = connector_channel.c.connector_id == event.connector_id
    data = event.data
    if event.kind in ("online", "heartbeat"):
        values: dict[str, Any] = {
            "last_heartbeat_at": event.at,
            "version": data["version"],
            "status": data["status"],
            "alarms": list(data["alarms"]),
            "reported_sequence": data["installed_seq"],
            "online": True,
            "node": node,
        }
        if event.kind == "online":
            values.update(connected_at=event.at, offline_since=None)
        session.execute(sa.update(connector_channel).where(where).values(**values))
        session.execute(
            sa.update(connector)
            .where(connector.c.id == event.connector_id)
            .values(last_seen_at=event.at, installed_sequence=data["installed_seq"])
        )
    elif event.kind == "push":
        session.execute(
            sa.update(connector_channel)
            .where(where)
            .values(last_push_sequence=data["seq"], last_push_at=event.at)
        )
    elif event.kind == "ack":
        session.execute(
            sa.update(connector_channel)
            .where(where)
            .values(
                last_ack_sequence=data["seq"],
                last_ack_at=event.at,
                reported_sequence=data["seq"],
                last_refusal=None,
            )
        )
        session.execute(
            sa.update(connector)
            .where(connector.c.id == event.connector_id)
            .values(installed_sequence=data["seq"], last_seen_at=event.at)
        )
    elif event.kind == "refusal":
        session.execute(sa.update(connector_channel).where(where).values(last_refusal=dict(data)))
        org = session.execute(
            sa.select(connector.c.org_id).where(connector.c.id == event.connector_id)
        ).scalar()
        # A refusal is rare and means the cloud published something a connector would not
        # take: the org's admins see it in their audit log.
        audit.record(
            session,
            event.at,
            f"connector:{event.connector_id}",
            f"connector.{data['of']}_refused",
            {"connector_id": event.connector_id, **data},
            org,
        )
    elif event.kind == "offline":
        # Only the node that held the connection marks it offline: the connector may
        # already be back on another node.
        session.execute(
            sa.update(connector_channel)
            .where(where, connector_channel.c.node == node)
            .values(online=False, offline_since=event.at)
        )
    else:  # pragma: no cover - the hub only makes the kinds above
        raise ValueError(f"unknown channel event {event.kind!r}")


def mark_node_offline(session: Session, node: str, now: dt.datetime) -> None:
    """At start and stop: every connection this node held is gone."""
    session.execute(
        sa.update(connector_channel)
        .where(connector_channel.c.node == node, connector_channel.c.online.is_(True))
        .values(online=False, offline_since=now)
    )


def channel_view(
    session: Session, connector_id: str, now: dt.datetime, stale_after: dt.timedelta
) -> ChannelView:
    """The portal's view of ``connector_id``'s channel.

    Online means "a node says it holds the connection *and* a heartbeat arrived within
    ``stale_after``": a node that died without saying so does not leave a connector online.
    """
    row = session.execute(
        sa.select(connector_channel).where(connector_channel.c.connector_id == connector_id)
    ).first()
    if row is None:
        return ChannelView(False, None, None, None, None, (), None, None)
    heartbeat = aware(row.last_heartbeat_at) if row.last_heartbeat_at else None
    fresh = heartbeat is not None and now - heartbeat <= stale_after
    online = bool(row.online) and fresh
    offline_since = aware(row.offline_since) if row.offline_since else None
    if not online and offline_since is None:
        offline_since = heartbeat
    return ChannelView(
        online,
        offline_since,
        heartbeat,
        None if row.reported_sequence is None else int(row.reported_sequence),
        row.status,
        tuple(row.alarms or ()),
        row.version,
        row.last_refusal,
    )
