"""Connector: the traversal client's settings (edge address, subject name, premises SIP server).

Revision ID: 0007_traversal
Revises: 0006_calendar
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_traversal"
down_revision = "0006_calendar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row (id 1). No key column: a dedicated traversal certificate's private key is a
    # vault secret (purpose ``connector.traversal_key``), AES-256-GCM under the master key
    # kept apart from this database (DESIGN.md §3 invariant 5).
    op.create_table(
        "connector_traversal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("edge_host", sa.String(253), nullable=False),
        sa.Column("edge_port", sa.Integer, nullable=False),
        sa.Column("edge_name", sa.String(253), nullable=False),
        sa.Column("premises_uri", sa.String(600), nullable=False),
        sa.Column("premises_name", sa.String(253), nullable=False),
        sa.Column("keepalive_interval", sa.Float, nullable=False),
        sa.Column("certificate_pem", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_connector_traversal_single_row"),
        sa.CheckConstraint(
            "edge_port BETWEEN 1 AND 65535", name="ck_connector_traversal_edge_port"
        ),
    )


def downgrade() -> None:
    op.drop_table("connector_traversal")
