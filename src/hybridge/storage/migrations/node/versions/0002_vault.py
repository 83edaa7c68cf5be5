"""Vault: data keys, their wraps under master keys, and the encrypted secrets.

Revision ID: 0002_vault
Revises: 0001_truststore
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_vault"
down_revision = "0001_truststore"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vault_data_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    # Two wraps of one data key exist only during a master-key rotation (current and next).
    op.create_table(
        "vault_key_wraps",
        sa.Column(
            "data_key_id",
            sa.Integer,
            sa.ForeignKey("vault_data_keys.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("master_key_id", sa.String(16), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("master_key_location", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('current', 'next')", name="ck_vault_key_wraps_state"),
        sa.CheckConstraint("length(master_key_id) = 16", name="ck_vault_key_wraps_key_id"),
    )
    op.create_table(
        "vault_secrets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "data_key_id",
            sa.Integer,
            sa.ForeignKey("vault_data_keys.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("purpose", "record_id", name="uq_vault_secrets_purpose_record"),
        sa.CheckConstraint("version >= 1", name="ck_vault_secrets_version"),
    )


def downgrade() -> None:
    op.drop_table("vault_secrets")
    op.drop_table("vault_key_wraps")
    op.drop_table("vault_data_keys")
