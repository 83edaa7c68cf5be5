"""What the control hub reads from and writes to the cloud database.

Writes from a thousand connections are batched by the hub (``ChannelEvent`` items, one
transaction per batch) so that a push acknowledged by every connector costs a handful of
commits, not one fsync per connector; within a batch, consecutive events of one kind are
one executemany of a statement built once, not one statement per event. Reads at connect
time (who is this certificate?) are one query each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
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


def _insert_ignoring_existing(session: Session, connector_ids: Sequence[str]) -> None:
    """Create the channel rows of ``connector_ids`` that do not exist yet.

    ``ON CONFLICT DO NOTHING``, not SELECT-then-INSERT: two cloud nodes (or two threads of
    one) touching the same connector at once would both see "absent" and the second INSERT
    would fail on the primary key.
    """
    if not connector_ids:
        return
    dialect = session.get_bind().dialect.name
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(connector_channel)
    elif dialect == "sqlite":
        statement = sqlite.insert(connector_channel)
    else:
        raise NotImplementedError(f"the control channel has no upsert for {dialect!r}")
    session.execute(
        statement.on_conflict_do_nothing(index_elements=[connector_channel.c.connector_id]),
        [
            {"connector_id": cid, "online": False, "alarms": [], "last_command_id": 0}
            for cid in connector_ids
        ],
    )


def _ensure_row(session: Session, connector_id: str) -> None:
    _insert_ignoring_existing(session, [connector_id])


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


# The batched statements below are built once (module level) and run with executemany:
# building, caching and compiling one SQLAlchemy statement per event cost ~0.3 ms each,
# which was most of the cloud's CPU per connector in a fan-out (bench/push_fanout.py).
# Bind names carry a ``b_`` prefix: SQLAlchemy reserves the column names for SET.
_CHANNEL = connector_channel.c.connector_id == sa.bindparam("b_id")
_CONNECTOR = connector.c.id == sa.bindparam("b_id")
_SEEN = {
    "last_heartbeat_at": sa.bindparam("b_at"),
    "version": sa.bindparam("b_version"),
    "status": sa.bindparam("b_status"),
    "alarms": sa.bindparam("b_alarms"),
    "reported_sequence": sa.bindparam("b_seq"),
    "online": True,
    "node": sa.bindparam("b_node"),
}
_HEARTBEAT = sa.update(connector_channel).where(_CHANNEL).values(**_SEEN)
_ONLINE = (
    sa.update(connector_channel)
    .where(_CHANNEL)
    .values(**_SEEN, connected_at=sa.bindparam("b_at"), offline_since=None)
)
_CONNECTOR_SEEN = (
    sa.update(connector)
    .where(_CONNECTOR)
    .values(last_seen_at=sa.bindparam("b_at"), installed_sequence=sa.bindparam("b_seq"))
)
_PUSH = (
    sa.update(connector_channel)
    .where(_CHANNEL)
    .values(last_push_sequence=sa.bindparam("b_seq"), last_push_at=sa.bindparam("b_at"))
)
_ACK = (
    sa.update(connector_channel)
    .where(_CHANNEL)
    .values(
        last_ack_sequence=sa.bindparam("b_seq"),
        last_ack_at=sa.bindparam("b_at"),
        reported_sequence=sa.bindparam("b_seq"),
        last_refusal=None,
    )
)
# Only the node that held the connection marks it offline: the connector may already be
# back on another node.
_OFFLINE = (
    sa.update(connector_channel)
    .where(_CHANNEL, connector_channel.c.node == sa.bindparam("b_node"))
    .values(online=False, offline_since=sa.bindparam("b_at"))
)


def write_events(session: Session, events: Sequence[ChannelEvent], node: str) -> None:
    """Apply ``events`` in order (one transaction: the caller's).

    Consecutive events of one kind are written with one executemany per statement; runs
    are applied in the order given, so the result is the same as one event at a time.
    """
    _insert_ignoring_existing(session, list(dict.fromkeys(e.connector_id for e in events)))
    start = 0
    while start < len(events):
        kind = events[start].kind
        end = start + 1
        while end < len(events) and events[end].kind == kind:
            end += 1
        _write_run(session, kind, events[start:end], node)
        start = end


def _write_run(session: Session, kind: str, run: Sequence[ChannelEvent], node: str) -> None:
    if kind in ("online", "heartbeat"):
        rows = [
            {
                "b_id": e.connector_id,
                "b_at": e.at,
                "b_version": e.data["version"],
                "b_status": e.data["status"],
                "b_alarms": list(e.data["alarms"]),
                "b_seq": e.data["installed_seq"],
                "b_node": node,
            }
            for e in run
        ]
        session.execute(_ONLINE if kind == "online" else _HEARTBEAT, rows)
        session.execute(_CONNECTOR_SEEN, rows)
    elif kind in ("push", "ack"):
        rows = [{"b_id": e.connector_id, "b_at": e.at, "b_seq": e.data["seq"]} for e in run]
        session.execute(_PUSH if kind == "push" else _ACK, rows)
        if kind == "ack":
            session.execute(_CONNECTOR_SEEN, rows)
    elif kind == "offline":
        session.execute(
            _OFFLINE, [{"b_id": e.connector_id, "b_at": e.at, "b_node": node} for e in run]
        )
    elif kind == "refusal":
        for event in run:
            _write_refusal(session, event)
    else:  # pragma: no cover - the hub only makes the kinds above
        raise ValueError(f"unknown channel event {kind!r}")


def _write_refusal(session: Session, event: ChannelEvent) -> None:
    data = event.data
    session.execute(
        sa.update(connector_channel)
        .where(connector_channel.c.connector_id == event.connector_id)
        .values(last_refusal=dict(data))
    )
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
