"""SQLAlchemy 2 models of the node schema's trust-store tables (migration ``0001_truststore``).

``audit_log`` is generic on purpose: other node packages (vault, zones, registration) write
their records to the same table with their own ``action`` names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out.

    SQLite has no time zone type: SQLAlchemy stores naive text and hands naive values back,
    which would silently mix local and UTC times. We store UTC and re-attach it on load.
    """

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
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class NodeBase(DeclarativeBase):
    """Declarative base of the node schema's tables (the migrations are hand-written)."""


class AnchorRow(NodeBase):
    """A manual or cloud anchor. Bootstrap anchors are never stored here."""

    __tablename__ = "anchors"
    __table_args__ = (
        sa.CheckConstraint("source IN ('manual', 'cloud')", name="ck_anchors_source"),
        sa.CheckConstraint(
            "(source = 'cloud') = (cloud_sequence IS NOT NULL)", name="ck_anchors_cloud_sequence"
        ),
        sa.CheckConstraint("length(fingerprint_sha256) = 64", name="ck_anchors_fingerprint"),
    )

    fingerprint_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    der: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False, index=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    added_by: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    cloud_sequence: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)


class TrustStateRow(NodeBase):
    """Named facts about the installed trust state, e.g. ``cloud_sequence`` -> ``"7"``."""

    __tablename__ = "trust_state"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class AuditRow(NodeBase):
    """One audit record of any node package: when, who or what, what changed."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    actor: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False, index=True)
    added: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    removed: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    detail: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
