"""``vault status``: what the vault holds and whether the configured key opens it.

It reads the database and tries the key, and it works when the key is lost: that is when
an admin needs it most. It reports ids, counts and locations, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hybridge.storage.db import Database
from hybridge.vault import models
from hybridge.vault.errors import VaultError
from hybridge.vault.keyring import load_master_key, read_wraps, unwrap_data_keys
from hybridge.vault.keys import KeyFileSource, MasterKeySource


@dataclass(frozen=True)
class VaultStatus:
    """The vault at a glance."""

    initialized: bool
    key_provider: str
    key_location: str
    key_ok: bool
    key_problem: str | None
    master_key_id: str | None
    configured_key_id: str | None
    next_master_key_id: str | None
    data_key_id: int | None
    data_key_created_at: datetime | None
    data_key_created_by: str | None
    secrets_count: int
    secrets_by_purpose: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (datetimes as ISO 8601)."""
        return {
            "initialized": self.initialized,
            "key_provider": self.key_provider,
            "key_location": self.key_location,
            "key_ok": self.key_ok,
            "key_problem": self.key_problem,
            "master_key_id": self.master_key_id,
            "configured_key_id": self.configured_key_id,
            "rotation_in_progress": self.next_master_key_id is not None,
            "next_master_key_id": self.next_master_key_id,
            "data_key_id": self.data_key_id,
            "data_key_created_at": (
                self.data_key_created_at.isoformat() if self.data_key_created_at else None
            ),
            "data_key_created_by": self.data_key_created_by,
            "secrets_count": self.secrets_count,
            "secrets_by_purpose": dict(self.secrets_by_purpose),
        }


def read_status(database: Database, source: MasterKeySource) -> VaultStatus:
    """The vault's status; never raises for a key problem, it reports it in ``key_problem``.

    Raises:
        StorageError: the database cannot be read.
    """
    with database.transaction() as session:
        wraps = read_wraps(session)
        data_key = session.execute(
            sa.select(models.data_keys).order_by(models.data_keys.c.id.desc()).limit(1)
        ).first()
        by_purpose = {
            purpose: count
            for purpose, count in session.execute(
                sa.select(models.secrets.c.purpose, sa.func.count())
                .group_by(models.secrets.c.purpose)
                .order_by(models.secrets.c.purpose)
            ).all()
        }
    current = sorted({w.master_key_id for w in wraps if w.state == "current"})
    upcoming = sorted({w.master_key_id for w in wraps if w.state == "next"})
    configured_id: str | None = None
    problem: str | None = None
    if not wraps:
        problem = "the vault is not initialized; run `hybridge connector vault init`"
    # Before init, a missing key file is expected: init creates it.
    if wraps or not (isinstance(source, KeyFileSource) and not source.exists()):
        try:
            configured = load_master_key(source, wraps) if wraps else source.load()
            configured_id = configured.key_id
            if wraps:
                unwrap_data_keys(configured, wraps)
        except VaultError as exc:
            problem = str(exc) if wraps else f"{problem}; {exc}"
    return VaultStatus(
        initialized=bool(wraps),
        key_provider=source.kind,
        key_location=source.location,
        key_ok=bool(wraps) and problem is None,
        key_problem=problem,
        master_key_id=", ".join(current) or None,
        configured_key_id=configured_id,
        next_master_key_id=", ".join(upcoming) or None,
        data_key_id=data_key.id if data_key else None,
        data_key_created_at=data_key.created_at if data_key else None,
        data_key_created_by=data_key.created_by if data_key else None,
        secrets_count=sum(by_purpose.values()),
        secrets_by_purpose=by_purpose,
    )
