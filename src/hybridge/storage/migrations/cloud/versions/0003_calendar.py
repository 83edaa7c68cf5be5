"""Cloud: the calendar service (enabled users, meetings, join-details template, user status).

Revision ID: 0003_calendar
Revises: 0002_control
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_calendar"
down_revision = "0002_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_org",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
        # Grows on every change of the organisation's enabled users (ETag of the list).
        sa.Column("users_version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("template_header", sa.Text, nullable=False, server_default=""),
        sa.Column("template_footer", sa.Text, nullable=False, server_default=""),
        sa.Column("template_updated_at", sa.DateTime(timezone=True)),
        sa.Column("template_updated_by", sa.String(320)),
    )
    op.create_table(
        "calendar_user",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
        sa.Column("mailbox", sa.String(256), primary_key=True),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True)),
        sa.Column("ooo_state", sa.String(16)),
        sa.Column("ooo_active", sa.Boolean),
        sa.Column("ooo_until", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "calendar_meeting",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
        sa.Column("mailbox", sa.String(256), primary_key=True),
        sa.Column("meeting_id", sa.String(1024), primary_key=True),
        sa.Column("version", sa.String(1024), nullable=False),
        sa.Column("uid", sa.String(1024), nullable=False),
        sa.Column("organizer", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(2048), nullable=False),
        sa.Column("start_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recurring", sa.Boolean, nullable=False),
        sa.Column("attendees_count", sa.Integer, nullable=False),
        sa.Column("keyword", sa.String(32)),
        sa.Column("join_url", sa.String(2048)),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_calendar_meeting_start", "calendar_meeting", ["org_id", "mailbox", "start_utc"]
    )
    op.create_table(
        "calendar_meeting_room",
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("room", sa.String(256), primary_key=True),
        sa.Column("mailbox", sa.String(256), primary_key=True),
        sa.Column("meeting_id", sa.String(1024), primary_key=True),
    )
    # The meeting side of a room's rows, so a meeting's rows go with it.
    op.create_index(
        "ix_calendar_meeting_room_meeting",
        "calendar_meeting_room",
        ["org_id", "mailbox", "meeting_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_calendar_meeting_room_meeting", "calendar_meeting_room")
    op.drop_table("calendar_meeting_room")
    op.drop_index("ix_calendar_meeting_start", "calendar_meeting")
    op.drop_table("calendar_meeting")
    op.drop_table("calendar_user")
    op.drop_table("calendar_org")
