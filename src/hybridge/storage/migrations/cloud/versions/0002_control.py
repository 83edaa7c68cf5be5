"""Cloud: the control channel's view of each connector (online, heartbeat, pushes, alarms).

Revision ID: 0002_control
Revises: 0001_cloud
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_control"
down_revision = "0001_cloud"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_channel",
        sa.Column("connector_id", sa.String(36), sa.ForeignKey("connector.id"), primary_key=True),
        # Which cloud process holds the connection (several share one database).
        sa.Column("node", sa.String(200)),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
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
        # Commands are numbered per connector and must grow (replay protection); the
        # counter lives here so every cloud process continues the same sequence.
        sa.Column("last_command_id", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("connector_channel")
