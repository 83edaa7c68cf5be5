"""Cloud: the calendar service (enabled users, meetings, join-details template, user status).

Revision ID: 0003_calendar
Revises: 0002_control
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401  (used once the tables are added)
from alembic import op  # noqa: F401

revision = "0003_calendar"
down_revision = "0002_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
