"""Connector: the traversal client's settings (edge address, subject name, premises SIP server).

Revision ID: 0007_traversal
Revises: 0006_calendar
Create Date: 2026-11-27
"""

import sqlalchemy as sa  # noqa: F401  (used once the tables are added)
from alembic import op  # noqa: F401

revision = "0007_traversal"
down_revision = "0006_calendar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
