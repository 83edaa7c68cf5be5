"""Persisted per-mailbox sync state, in the node database (table ``calendar_sync``).

The sync engine writes a mailbox's state after every page of changes the cloud has seen,
so a restart resumes at the last finished page: nothing missed, and at most one page seen
twice (the sink is idempotent, so nothing duplicated either).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from hybridge.calendar.errors import SyncStateStoreError
from hybridge.core.errors import HybridgeError
from hybridge.storage.db import Database

Status = Literal["ok", "error", "paused"]

_metadata = sa.MetaData()
calendar_sync = sa.Table(
    "calendar_sync",
    _metadata,
    sa.Column("config", sa.String(64), primary_key=True),
    sa.Column("mailbox", sa.String(320), primary_key=True),
    sa.Column("sync_state", sa.Text, nullable=True),
    sa.Column("resyncing", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class MailboxSyncRow:
    """A mailbox's persisted position and status."""

    mailbox: str
    sync_state: str | None
    resyncing: bool
    status: Status
    reason: str


class SyncStateStore:
    """The ``calendar_sync`` rows of one calendar configuration (``config``)."""

    def __init__(
        self,
        database: Database,
        config: str,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if not 1 <= len(config) <= 64:
            raise SyncStateStoreError(f"config key {config!r} must be 1..64 characters")
        self._db = database
        self.config = config
        self._now = now

    def load(self, mailbox: str) -> MailboxSyncRow:
        """The row of ``mailbox`` (a fresh one, state None, when there is none)."""
        key = mailbox.lower()
        try:
            with self._db.transaction() as session:
                row = session.execute(
                    sa.select(calendar_sync).where(
                        calendar_sync.c.config == self.config, calendar_sync.c.mailbox == key
                    )
                ).first()
        except HybridgeError as exc:
            raise SyncStateStoreError(f"cannot read the sync state of {key!r}: {exc}") from exc
        if row is None:
            return MailboxSyncRow(key, None, False, "ok", "")
        return MailboxSyncRow(key, row.sync_state, bool(row.resyncing), row.status, row.reason)

    def save(
        self,
        mailbox: str,
        sync_state: str | None,
        *,
        resyncing: bool = False,
        status: Status = "ok",
        reason: str = "",
    ) -> None:
        """Insert or replace the row of ``mailbox`` in one transaction."""
        key = mailbox.lower()
        values = {
            "sync_state": sync_state,
            "resyncing": resyncing,
            "status": status,
            "reason": reason[:1000],
            "updated_at": self._now(),
        }
        where = (calendar_sync.c.config == self.config) & (calendar_sync.c.mailbox == key)
        try:
            with self._db.transaction() as session:
                updated = session.execute(sa.update(calendar_sync).where(where).values(**values))
                if updated.rowcount == 0:  # type: ignore[attr-defined]
                    session.execute(
                        sa.insert(calendar_sync).values(config=self.config, mailbox=key, **values)
                    )
        except HybridgeError as exc:
            raise SyncStateStoreError(f"cannot save the sync state of {key!r}: {exc}") from exc

    def set_status(self, mailbox: str, status: Status, reason: str = "") -> None:
        """Change the status of ``mailbox`` and keep its position."""
        row = self.load(mailbox)
        self.save(mailbox, row.sync_state, resyncing=row.resyncing, status=status, reason=reason)

    def delete(self, mailbox: str) -> None:
        """Forget ``mailbox`` (the user is no longer enabled)."""
        key = mailbox.lower()
        try:
            with self._db.transaction() as session:
                session.execute(
                    sa.delete(calendar_sync).where(
                        calendar_sync.c.config == self.config, calendar_sync.c.mailbox == key
                    )
                )
        except HybridgeError as exc:
            raise SyncStateStoreError(f"cannot delete the sync state of {key!r}: {exc}") from exc

    def mailboxes(self) -> list[MailboxSyncRow]:
        """Every row of this configuration, by mailbox."""
        with self._db.transaction() as session:
            rows = session.execute(
                sa.select(calendar_sync)
                .where(calendar_sync.c.config == self.config)
                .order_by(calendar_sync.c.mailbox)
            ).all()
        return [
            MailboxSyncRow(r.mailbox, r.sync_state, bool(r.resyncing), r.status, r.reason)
            for r in rows
        ]
