"""Connector: the admin web tables (shared with the cloud) and the cloud registration.

Revision ID: 0003_connector
Revises: 0002_vault
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from hybridge.web.schema import create_web_tables, drop_web_tables

revision = "0003_connector"
down_revision = "0002_vault"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_web_tables()
    # One row at most: a connector is registered to one cloud at a time. The private key is
    # not here: it lives in the vault (``key_secret_id``), encrypted under the master key.
    op.create_table(
        "connector_registration",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("connector_id", sa.String(36), nullable=False),
        sa.Column("cloud_url", sa.String(2000), nullable=False),
        sa.Column("organisation_id", sa.String(36), nullable=False),
        sa.Column("organisation_name", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("key_fp", sa.String(64), nullable=False),
        sa.Column("key_secret_id", sa.String(32), nullable=False),
        sa.Column("client_certificate_pem", sa.Text, nullable=False),
        sa.Column("connector_ca_pem", sa.Text, nullable=False),
        sa.Column("list_signing_key_pem", sa.Text, nullable=False),
        sa.Column("trust_mode", sa.String(8), nullable=False),
        sa.Column("cloud_ca_hint", sa.String(1000), nullable=False),
        sa.Column("control_url", sa.String(2000), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(320), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_connector_registration_single"),
        sa.CheckConstraint(
            "trust_mode IN ('auto', 'manual')", name="ck_connector_registration_trust_mode"
        ),
    )


def downgrade() -> None:
    op.drop_table("connector_registration")
    drop_web_tables()
