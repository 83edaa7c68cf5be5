"""Calendar connector: the persisted sync state of every watched mailbox.

Revision ID: 0006_calendar
Revises: 0005_exchange
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_calendar"
down_revision = "0005_exchange"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (calendar configuration, mailbox). ``sync_state`` is the backend's opaque
    # position (EWS SyncState, CalDAV sync-token), written after every page the cloud has
    # seen: a restart resumes there. ``resyncing`` marks a full resync in progress, which a
    # restart must begin again (its "seen" set is not persisted).
    op.create_table(
        "calendar_sync",
        sa.Column("config", sa.String(64), primary_key=True),
        sa.Column("mailbox", sa.String(320), primary_key=True),
        sa.Column("sync_state", sa.Text, nullable=True),
        sa.Column("resyncing", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error', 'paused')", name="ck_calendar_sync_status"),
    )


def downgrade() -> None:
    op.drop_table("calendar_sync")
