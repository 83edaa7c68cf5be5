"""Reading and writing the trust store's rows inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.truststore.interfaces import AnchorSource, AuditEntry, CloudApplyResult, TrustAnchor
from hybridge.truststore.models import AnchorRow, AuditRow, TrustStateRow

CLOUD_SEQUENCE = "cloud_sequence"


def anchor_rows(session: Session) -> list[AnchorRow]:
    """Every manual and cloud anchor row."""
    return list(session.scalars(sa.select(AnchorRow)))


def bundle_pairs(session: Session) -> list[tuple[str, bytes]]:
    """``(fingerprint, der)`` of every anchor: what the exported bundle is made of."""
    return [(row.fingerprint_sha256, row.der) for row in anchor_rows(session)]


def fingerprint_of(row: AnchorRow) -> str:
    """The row's SHA-256 fingerprint (the key ``fingerprints.resolve`` matches on)."""
    return row.fingerprint_sha256


def to_anchor(row: AnchorRow) -> TrustAnchor:
    """The row as a validated ``TrustAnchor`` value."""
    return TrustAnchor(
        fingerprint_sha256=row.fingerprint_sha256,
        der=row.der,
        source=AnchorSource(row.source),
        added_at=row.added_at,
        added_by=row.added_by,
        cloud_sequence=row.cloud_sequence,
    )


def add_audit(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    added: Sequence[str] = (),
    removed: Sequence[str] = (),
    detail: str | None = None,
) -> None:
    """Add one audit record to the session (committed with the change it describes)."""
    session.add(
        AuditRow(
            at=at,
            actor=actor,
            action=action,
            added=sorted(added),
            removed=sorted(removed),
            detail=detail,
        )
    )


def audit_entries(session: Session, limit: int) -> tuple[AuditEntry, ...]:
    """The newest ``limit`` audit records, newest first."""
    rows = session.scalars(sa.select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))
    return tuple(
        AuditEntry(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            added=tuple(row.added),
            removed=tuple(row.removed),
            detail=row.detail,
        )
        for row in rows
    )


def cloud_sequence(session: Session) -> int | None:
    """The installed cloud set's sequence, ``None`` before the first one."""
    row = session.get(TrustStateRow, CLOUD_SEQUENCE)
    return None if row is None else int(row.value)


def replace_cloud_rows(
    session: Session, target: dict[str, bytes], *, sequence: int, actor: str, now: datetime
) -> CloudApplyResult:
    """Make the cloud rows equal ``target`` (fingerprint -> DER); manual rows stay as they are.

    A fingerprint of ``target`` that is a manual anchor stays manual (``kept_manual``).
    """
    rows = {row.fingerprint_sha256: row for row in anchor_rows(session)}
    manual = {fp for fp, row in rows.items() if row.source == AnchorSource.MANUAL}
    cloud = {fp for fp, row in rows.items() if row.source == AnchorSource.CLOUD}
    wanted = set(target) - manual
    removed = sorted(cloud - wanted)
    added = sorted(wanted - cloud)
    for fingerprint in removed:
        session.delete(rows[fingerprint])
    for fingerprint in added:
        session.add(
            AnchorRow(
                fingerprint_sha256=fingerprint,
                der=target[fingerprint],
                source=AnchorSource.CLOUD.value,
                added_at=now,
                added_by=actor,
                cloud_sequence=sequence,
            )
        )
    return CloudApplyResult(
        sequence=sequence,
        added=tuple(added),
        removed=tuple(removed),
        kept_manual=tuple(sorted(set(target) & manual)),
        unchanged=tuple(sorted(cloud & wanted)),
    )


def set_state(session: Session, name: str, value: str, now: datetime) -> None:
    """Insert or update one named trust-state fact."""
    row = session.get(TrustStateRow, name)
    if row is None:
        session.add(TrustStateRow(name=name, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
