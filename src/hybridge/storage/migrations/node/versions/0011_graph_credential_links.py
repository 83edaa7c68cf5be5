"""One-time credential-entry links for Exchange Online (Graph) client secrets.

The same rules as ``exchange_credential_links`` (0005): token stored as its SHA-256 only,
24 h, single use, one configuration. A table of its own because the link must belong to
exactly one Graph configuration: the foreign key (deleted with it) says so, which one
table with a nullable key to either kind of configuration could not.

Revision ID: 0011_graph_credential_links
Revises: 0010_exchange_graph
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_graph_credential_links"
down_revision = "0010_exchange_graph"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The link's token is never stored, only its SHA-256 (a 256-bit random token needs no
    # slow hash: it cannot be guessed, only stolen, and a stolen hash does not open the link).
    op.create_table(
        "graph_credential_links",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "config_id",
            sa.String(32),
            sa.ForeignKey("exchange_graph_configs.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("csrf_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_from", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("graph_credential_links")
