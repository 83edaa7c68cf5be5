"""Exchange Online: the calendar connector's Microsoft Graph configurations.

Revision ID: 0010_exchange_graph
Revises: 0009_traversal_listener
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_exchange_graph"
down_revision = "0009_traversal_listener"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No secret column: the app registration's client secret is a vault secret (purpose
    # ``exchange.graph_client_secret``, record = the configuration id), AES-256-GCM under the
    # master key kept apart from this database (DESIGN.md §3 invariant 5).
    op.create_table(
        "exchange_graph_configs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(36), nullable=False),
        sa.Column("test_mailbox", sa.String(320), nullable=False),
        sa.Column("authority_host", sa.String(2000), nullable=False),
        sa.Column("graph_url", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("last_test_code", sa.String(32), nullable=True),
        sa.Column("last_test_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("exchange_graph_configs")
