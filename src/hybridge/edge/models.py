"""SQLAlchemy row of the edge's zones (migration ``0004_edge``), on the node schema."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hybridge.truststore.models import NodeBase, UtcDateTime


class EdgeZoneRow(NodeBase):
    """One zone. Values are checked by ``hybridge.edge.zones.Zone`` before they get here."""

    __tablename__ = "edge_zones"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('dns', 'traversal')", name="ck_edge_zones_kind"),
        sa.CheckConstraint("cn_rule IN ('when_no_san', 'never')", name="ck_edge_zones_cn_rule"),
        sa.CheckConstraint(
            "kind = 'dns' OR peer IS NULL", name="ck_edge_zones_traversal_has_no_peer"
        ),
    )

    name: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    subject_name: Mapped[str] = mapped_column(sa.String(253), nullable=False)
    cn_rule: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    wildcards: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    peer: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(sa.String(200), nullable=False)
