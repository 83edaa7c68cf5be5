"""Trust store: manual and cloud anchors, trust state, and the node's audit log.

Revision ID: 0001_truststore
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_truststore"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anchors",
        sa.Column("fingerprint_sha256", sa.String(64), primary_key=True),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("cloud_sequence", sa.BigInteger, nullable=True),
        sa.CheckConstraint("source IN ('manual', 'cloud')", name="ck_anchors_source"),
        # A cloud anchor always records the set that installed it; a manual one never does.
        sa.CheckConstraint(
            "(source = 'cloud') = (cloud_sequence IS NOT NULL)", name="ck_anchors_cloud_sequence"
        ),
        sa.CheckConstraint("length(fingerprint_sha256) = 64", name="ck_anchors_fingerprint"),
    )
    op.create_index("ix_anchors_source", "anchors", ["source"])
    op.create_table(
        "trust_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Generic on purpose: every node package (vault, zones, registration) audits here.
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("added", sa.JSON, nullable=False),
        sa.Column("removed", sa.JSON, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("trust_state")
    op.drop_index("ix_anchors_source", table_name="anchors")
    op.drop_table("anchors")
