"""Edge: the DNS and traversal zones.

Revision ID: 0004_edge
Revises: 0003_connector
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_edge"
down_revision = "0003_connector"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_zones",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_name", sa.String(253), nullable=False),
        sa.Column("cn_rule", sa.String(16), nullable=False),
        sa.Column("wildcards", sa.Boolean, nullable=False),
        sa.Column("peer", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("kind IN ('dns', 'traversal')", name="ck_edge_zones_kind"),
        sa.CheckConstraint("cn_rule IN ('when_no_san', 'never')", name="ck_edge_zones_cn_rule"),
        sa.CheckConstraint(
            "kind = 'dns' OR peer IS NULL", name="ck_edge_zones_traversal_has_no_peer"
        ),
    )


def downgrade() -> None:
    op.drop_table("edge_zones")
