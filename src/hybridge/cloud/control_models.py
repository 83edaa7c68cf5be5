"""The control channel's table (schema ``cloud``, migration ``0002_control``)."""

from __future__ import annotations

import sqlalchemy as sa

from hybridge.web.schema import metadata

connector_channel = sa.Table(
    "connector_channel",
    metadata,
    sa.Column("connector_id", sa.String(36), sa.ForeignKey("connector.id"), primary_key=True),
    sa.Column("node", sa.String(200)),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("connected_at", sa.DateTime(timezone=True)),
    sa.Column("offline_since", sa.DateTime(timezone=True)),
    sa.Column("last_heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("version", sa.String(64)),
    sa.Column("status", sa.String(16)),
    sa.Column("alarms", sa.JSON, nullable=False),
    sa.Column("reported_sequence", sa.BigInteger),
    sa.Column("last_push_sequence", sa.BigInteger),
    sa.Column("last_push_at", sa.DateTime(timezone=True)),
    sa.Column("last_ack_sequence", sa.BigInteger),
    sa.Column("last_ack_at", sa.DateTime(timezone=True)),
    sa.Column("last_refusal", sa.JSON),
    sa.Column("last_command_id", sa.BigInteger, nullable=False),
)
