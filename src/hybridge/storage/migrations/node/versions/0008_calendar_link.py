"""Connector: the calendar service's link to the cloud (enabled users, per-user status).

Revision ID: 0008_calendar_link
Revises: 0007_traversal
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_calendar_link"
down_revision = "0007_traversal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The last enabled-user list the cloud sent, with its version: a restart (or a cloud
    # that cannot be reached) keeps watching these mailboxes instead of dropping them.
    op.create_table(
        "calendar_link_users",
        sa.Column("mailbox", sa.String(320), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
    )
    op.create_table(
        "calendar_link_meta",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("users_version", sa.Integer, nullable=True),
        sa.Column("users_fetched_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The meetings the cloud acknowledged, per mailbox: the page's counts, and what a
    # disabled user's removal must make the cloud forget.
    op.create_table(
        "calendar_link_meetings",
        sa.Column("mailbox", sa.String(320), primary_key=True),
        sa.Column("meeting_id", sa.String(1024), primary_key=True),
        sa.Column("version", sa.String(1024), nullable=False),
        sa.Column("keyword", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The status last decided for each user, and whether the cloud has acknowledged it
    # (``reported``): a status decided while the cloud was down is sent when it is back.
    op.create_table(
        "calendar_link_status",
        sa.Column("mailbox", sa.String(320), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("out_of_office", sa.JSON, nullable=True),
        sa.Column("reported", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'error', 'paused')", name="ck_calendar_link_status_status"
        ),
    )
    # Users removed while the cloud could not be told to forget their meetings: retried.
    op.create_table(
        "calendar_link_removals",
        sa.Column("mailbox", sa.String(320), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "calendar_link_removals",
        "calendar_link_status",
        "calendar_link_meetings",
        "calendar_link_meta",
        "calendar_link_users",
    ):
        op.drop_table(table)
