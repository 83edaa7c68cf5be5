"""The tables the web layer keeps in the role's own database (cloud or node schema).

Each role's Alembic history creates them by calling ``create_web_tables()`` from one of its
hand-written migrations; the definitions live here once so both roles agree.

- ``web_admin``: admin accounts (login = e-mail or user name, argon2id hash);
- ``web_session``: server-side sessions, keyed by the SHA-256 of the cookie value (a copy
  of the database does not hand out live sessions); anonymous sessions carry the CSRF token
  of the login form;
- ``web_login_failure``: failure counters per account and per client address (throttling).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

web_admin = sa.Table(
    "web_admin",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("login", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

web_session = sa.Table(
    "web_session",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("admin_id", sa.String(36), sa.ForeignKey("web_admin.id", ondelete="CASCADE")),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

web_login_failure = sa.Table(
    "web_login_failure",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True)),
)


def create_web_tables() -> None:
    """Create the web tables; call from inside an Alembic migration's ``upgrade()``."""
    from alembic import op

    op.create_table(
        "web_admin",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("login", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "web_session",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("admin_id", sa.String(36), sa.ForeignKey("web_admin.id", ondelete="CASCADE")),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_web_session_expires_at", "web_session", ["expires_at"])
    op.create_table(
        "web_login_failure",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
    )


def drop_web_tables() -> None:
    """Drop the web tables; call from inside an Alembic migration's ``downgrade()``."""
    from alembic import op

    op.drop_table("web_login_failure")
    op.drop_index("ix_web_session_expires_at", "web_session")
    op.drop_table("web_session")
    op.drop_table("web_admin")
