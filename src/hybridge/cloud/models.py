"""The cloud's tables (schema ``cloud``), as SQLAlchemy Core tables.

The Alembic migration ``0001_cloud`` creates them; these definitions are what the services
query. ``web_*`` tables (admins, sessions, login failures) come from ``hybridge.web.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa

from hybridge.web.schema import metadata

organisation = sa.Table(
    "organisation",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

org_admin = sa.Table(
    "org_admin",
    metadata,
    sa.Column("admin_id", sa.String(36), sa.ForeignKey("web_admin.id"), primary_key=True),
    sa.Column("org_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False),
    sa.Column("is_operator", sa.Boolean, nullable=False),
)

connector = sa.Table(
    "connector",
    metadata,
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
)

authorization_code = sa.Table(
    "authorization_code",
    metadata,
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

ca_certificate = sa.Table(
    "ca_certificate",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("subject", sa.String(1000), nullable=False),
    sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

ca_list_version = sa.Table(
    "ca_list_version",
    metadata,
    sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("change", sa.String(1000), nullable=False),
    sa.Column("fingerprints", sa.JSON, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
)

audit_event = sa.Table(
    "audit_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("org_id", sa.String(36)),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)
