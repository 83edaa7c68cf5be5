"""The vault's tables in the node schema (created by migration ``0002_vault``).

- ``vault_data_keys``: one row per data key (normally exactly one);
- ``vault_key_wraps``: each data key wrapped under a master key, with that key's id. Two
  wraps of one data key exist only during a master-key rotation: ``current`` and ``next``;
- ``vault_secrets``: one row per secret: AES-256-GCM nonce and ciphertext, and the fields
  bound into its associated data (id, purpose, record id, version, data-key id).

Plain SQLAlchemy Core tables: the vault issues a few explicit statements, and a table
object is what the migration test compares against.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out (SQLite stores naive text and would lose the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime for a UTC column: {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


metadata = sa.MetaData()

data_keys = sa.Table(
    "vault_data_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("algorithm", sa.String(32), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

key_wraps = sa.Table(
    "vault_key_wraps",
    metadata,
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
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("state IN ('current', 'next')", name="ck_vault_key_wraps_state"),
    sa.CheckConstraint("length(master_key_id) = 16", name="ck_vault_key_wraps_key_id"),
)

secrets = sa.Table(
    "vault_secrets",
    metadata,
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
    sa.Column("set_at", UtcDateTime, nullable=False),
    sa.Column("set_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("purpose", "record_id", name="uq_vault_secrets_purpose_record"),
    sa.CheckConstraint("version >= 1", name="ck_vault_secrets_version"),
)

# The node schema's shared audit table (migration 0001); the vault only appends to it.
audit_log = sa.table(
    "audit_log",
    sa.column("at", UtcDateTime),
    sa.column("actor", sa.String),
    sa.column("action", sa.String),
    sa.column("added", sa.JSON),
    sa.column("removed", sa.JSON),
    sa.column("detail", sa.Text),
)
