"""Connector: the calendar service's link to the cloud (enabled users, per-user status).

Revision ID: 0008_calendar_link
Revises: 0007_traversal
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401  (used once the tables are added)
from alembic import op  # noqa: F401

revision = "0008_calendar_link"
down_revision = "0007_traversal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
