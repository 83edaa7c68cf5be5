"""Exchange: the calendar connector's Exchange configurations and credential-entry links.

Revision ID: 0005_exchange
Revises: 0004_edge
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_exchange"
down_revision = "0004_edge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No password column: the impersonation password is a vault secret (purpose
    # ``exchange.impersonation``, record = the configuration id), AES-256-GCM under the
    # master key kept apart from this database (DESIGN.md §3 invariant 5).
    op.create_table(
        "exchange_configs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False, unique=True),
        sa.Column("ews_url", sa.String(2000), nullable=True),
        sa.Column("autodiscover_email", sa.String(320), nullable=True),
        sa.Column("redirect_hosts", sa.JSON, nullable=False),
        sa.Column("username", sa.String(320), nullable=False),
        sa.Column("auth", sa.String(8), nullable=False),
        sa.Column("verify_tls", sa.Boolean, nullable=False),
        sa.Column("test_mailbox", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("last_test_code", sa.String(32), nullable=True),
        sa.Column("last_test_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("auth IN ('NTLM', 'Basic')", name="ck_exchange_configs_auth"),
        sa.CheckConstraint(
            "(ews_url IS NULL) <> (autodiscover_email IS NULL)",
            name="ck_exchange_configs_one_endpoint",
        ),
    )
    # The link's token is never stored, only its SHA-256 (a 256-bit random token needs no
    # slow hash: it cannot be guessed, only stolen, and a stolen hash does not open the link).
    op.create_table(
        "exchange_credential_links",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "config_id",
            sa.String(32),
            sa.ForeignKey("exchange_configs.id", ondelete="CASCADE"),
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
    op.drop_table("exchange_credential_links")
    op.drop_table("exchange_configs")
