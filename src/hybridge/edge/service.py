"""The zones of one edge, stored in the edge's node database.

``ZoneStore`` is the only writer of ``edge_zones``; every change is audited in the shared
``audit_log`` in the same transaction. An edge has at most one traversal zone: the cloud's
requests go to *the* connector, and two would make that choice arbitrary.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from hybridge.core.tlsverify import CnRule
from hybridge.edge.errors import EdgeSetupError, ZoneConflict, ZoneNotFound
from hybridge.edge.models import EdgeZoneRow
from hybridge.edge.zones import PeerAddress, Zone, ZoneKind
from hybridge.storage import StorageError
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.truststore.records import add_audit
from hybridge.truststore.services import DATABASE_NAME


def _now() -> datetime:
    return datetime.now(UTC)


def _zone(row: EdgeZoneRow) -> Zone:
    return Zone(
        name=row.name,
        kind=ZoneKind(row.kind),
        subject_name=row.subject_name,
        cn_rule=CnRule(row.cn_rule),
        wildcards=row.wildcards,
        peer=PeerAddress.parse(row.peer) if row.peer else None,
    )


class ZoneStore:
    """Add, list, find and remove zones. Raises ``StorageError`` if the database fails."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = _now) -> None:
        self._db = database
        self._clock = clock

    def close(self) -> None:
        """Release the database engine."""
        self._db.dispose()

    def __enter__(self) -> ZoneStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, zone: Zone, *, actor: str) -> Zone:
        """Store ``zone`` and return it.

        Raises ``ZoneConflict`` when the name is taken or a traversal zone already exists.
        """
        with self._db.transaction() as session:
            if session.get(EdgeZoneRow, zone.name) is not None:
                raise ZoneConflict(f"a zone named {zone.name!r} exists; remove it first")
            if zone.kind is ZoneKind.TRAVERSAL:
                existing = session.scalars(
                    sa.select(EdgeZoneRow.name).where(EdgeZoneRow.kind == ZoneKind.TRAVERSAL.value)
                ).first()
                if existing is not None:
                    raise ZoneConflict(
                        f"traversal zone {existing!r} exists; an edge has one traversal zone"
                    )
            session.add(
                EdgeZoneRow(
                    name=zone.name,
                    kind=zone.kind.value,
                    subject_name=zone.subject_name,
                    cn_rule=zone.cn_rule.value,
                    wildcards=zone.wildcards,
                    peer=str(zone.peer) if zone.peer is not None else None,
                    created_at=self._clock(),
                    created_by=actor,
                )
            )
            add_audit(
                session,
                at=self._clock(),
                actor=actor,
                action="edge.zone_add",
                added=[zone.name],
                detail=f"{zone.kind.value} zone, subject name {zone.subject_name}",
            )
        return zone

    def list(self) -> tuple[Zone, ...]:
        """Every zone, DNS zones first, then by name."""
        with self._db.transaction() as session:
            rows = session.scalars(sa.select(EdgeZoneRow).order_by(EdgeZoneRow.name)).all()
            zones = [_zone(row) for row in rows]
        return tuple(sorted(zones, key=lambda z: (z.kind is not ZoneKind.DNS, z.name)))

    def get(self, name: str) -> Zone:
        """The zone called ``name``; raises ``ZoneNotFound``."""
        with self._db.transaction() as session:
            row = session.get(EdgeZoneRow, name)
            if row is None:
                raise ZoneNotFound(f"no zone named {name!r}; 'hybridge edge zone list' shows them")
            return _zone(row)

    def remove(self, name: str, *, actor: str) -> Zone:
        """Delete the zone called ``name`` and return it; raises ``ZoneNotFound``."""
        with self._db.transaction() as session:
            row = session.get(EdgeZoneRow, name)
            if row is None:
                raise ZoneNotFound(f"no zone named {name!r}; 'hybridge edge zone list' shows them")
            zone = _zone(row)
            session.delete(row)
            add_audit(
                session,
                at=self._clock(),
                actor=actor,
                action="edge.zone_remove",
                removed=[name],
                detail=f"{zone.kind.value} zone, subject name {zone.subject_name}",
            )
        return zone


def open_zone_store(data_dir: Path, *, database_url: str | None = None) -> ZoneStore:
    """The zone store of the edge whose data directory is ``data_dir`` (created 0700).

    The database is the node database of that directory (``hybridge.db``), the same file the
    edge's trust store uses. Raises ``EdgeSetupError`` when it cannot be opened.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = open_database(database_url or sqlite_url(data_dir / DATABASE_NAME), "node")
    except OSError as exc:
        raise EdgeSetupError(
            f"cannot create the data directory {str(data_dir)!r}: {exc.strerror}"
        ) from exc
    except StorageError as exc:
        raise EdgeSetupError(f"cannot open the edge database: {exc}") from exc
    return ZoneStore(database)
