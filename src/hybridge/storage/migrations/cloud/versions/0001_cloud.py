"""Cloud: admin web tables, organisations, connectors, authorization codes, CA list, audit.

Revision ID: 0001_cloud
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from hybridge.web.schema import create_web_tables, drop_web_tables

revision = "0001_cloud"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_web_tables()
    op.create_table(
        "organisation",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "org_admin",
        sa.Column("admin_id", sa.String(36), sa.ForeignKey("web_admin.id"), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False),
        # Operators run the cloud itself: only they change the CA list every org receives.
        sa.Column("is_operator", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "connector",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False),
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("key_fp", sa.String(64), nullable=False),
        sa.Column("certificate_pem", sa.Text, nullable=False),
        sa.Column("certificate_serial", sa.String(64), nullable=False),
        sa.Column("trust_mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(36), nullable=False),
        sa.Column("installed_sequence", sa.BigInteger),
        sa.Column("last_seen_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("trust_mode IN ('auto', 'manual')", name="ck_connector_trust_mode"),
        sa.CheckConstraint(
            "status IN ('active', 'deregistered', 'revoked')", name="ck_connector_status"
        ),
    )
    op.create_index("ix_connector_org", "connector", ["org_id"])
    op.create_table(
        "authorization_code",
        # SHA-256 of the code: a database copy holds no redeemable code.
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False),
        sa.Column("admin_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2000), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("key_fp", sa.String(64), nullable=False),
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("trust_mode", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("connector_id", sa.String(36)),
    )
    op.create_table(
        "ca_certificate",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("subject", sa.String(1000), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ca_list_version",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("change", sa.String(1000), nullable=False),
        sa.Column("fingerprints", sa.JSON, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(36)),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_event_org_at", "audit_event", ["org_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_org_at", "audit_event")
    op.drop_table("audit_event")
    op.drop_table("ca_list_version")
    op.drop_table("ca_certificate")
    op.drop_table("authorization_code")
    op.drop_index("ix_connector_org", "connector")
    op.drop_table("connector")
    op.drop_table("org_admin")
    op.drop_table("organisation")
    drop_web_tables()
