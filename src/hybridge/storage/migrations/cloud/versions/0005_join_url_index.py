"""Cloud: index the meetings' join URLs (the public join page looks a meeting up by it).

Revision ID: 0005_join_url_index
Revises: 0004_callservice
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005_join_url_index"
down_revision = "0004_callservice"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_calendar_meeting_join_url", "calendar_meeting", ["join_url"])


def downgrade() -> None:
    op.drop_index("ix_calendar_meeting_join_url", table_name="calendar_meeting")
