"""Cloud: each organisation's edge for the call service (TLS subject name, address).

Revision ID: 0004_callservice
Revises: 0003_calendar
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_callservice"
down_revision = "0003_calendar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_edge",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), primary_key=True),
        # The name the edge's certificate must carry (SAN dNSName, or CN without SANs).
        sa.Column("subject_name", sa.String(253), nullable=False),
        sa.Column("address", sa.String(300)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("org_edge")
