"""The calendar link's tables in the node database (migration 0008) and their store.

- ``calendar_link_users`` + ``calendar_link_meta``: the last enabled-user list and its
  version, so that a restart or an unreachable cloud keeps watching the same mailboxes;
- ``calendar_link_meetings``: the meetings the cloud acknowledged (the page's counts);
- ``calendar_link_status``: each user's last status and whether the cloud has it yet;
- ``calendar_link_removals``: users removed while the cloud could not be told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hybridge.calendar.model import Meeting
from hybridge.connector.calendar_cloud import EnabledUser, UserList
from hybridge.storage.db import Database

metadata = sa.MetaData()
users_table = sa.Table(
    "calendar_link_users",
    metadata,
    sa.Column("mailbox", sa.String(320), primary_key=True),
    sa.Column("display_name", sa.String(200), nullable=False),
)
meta_table = sa.Table(
    "calendar_link_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("users_version", sa.Integer, nullable=True),
    sa.Column("users_fetched_at", sa.DateTime(timezone=True), nullable=True),
)
meetings_table = sa.Table(
    "calendar_link_meetings",
    metadata,
    sa.Column("mailbox", sa.String(320), primary_key=True),
    sa.Column("meeting_id", sa.String(1024), primary_key=True),
    sa.Column("version", sa.String(1024), nullable=False),
    sa.Column("keyword", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
status_table = sa.Table(
    "calendar_link_status",
    metadata,
    sa.Column("mailbox", sa.String(320), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("out_of_office", sa.JSON, nullable=True),
    sa.Column("reported", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
removals_table = sa.Table(
    "calendar_link_removals",
    metadata,
    sa.Column("mailbox", sa.String(320), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class UserStatusRow:
    """A user's last status, and whether the cloud acknowledged it."""

    mailbox: str
    status: str
    reason: str
    out_of_office: dict[str, Any] | None
    reported: bool
    updated_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LinkStore:
    """The 0008 tables of the node database."""

    def __init__(self, database: Database, now: Callable[[], dt.datetime] = _now) -> None:
        self._db = database
        self._now = now

    # -- the enabled-user list ---------------------------------------------------------

    def users(self) -> UserList | None:
        """The last list the cloud sent, or None before the first one."""
        with self._db.transaction() as session:
            meta = session.execute(sa.select(meta_table).where(meta_table.c.id == 1)).first()
            if meta is None or meta.users_version is None:
                return None
            rows = session.execute(sa.select(users_table).order_by(users_table.c.mailbox)).all()
        return UserList(
            meta.users_version, tuple(EnabledUser(r.mailbox, r.display_name) for r in rows)
        )

    def fetched_at(self) -> dt.datetime | None:
        with self._db.transaction() as session:
            return session.scalar(
                sa.select(meta_table.c.users_fetched_at).where(meta_table.c.id == 1)
            )

    def save_users(self, users: UserList | None) -> None:
        """Replace the cached list with ``users`` (None: unchanged, only note the fetch)."""
        now = self._now()
        with self._db.transaction() as session:
            values: dict[str, Any] = {"users_fetched_at": now}
            if users is not None:
                values["users_version"] = users.version
                session.execute(sa.delete(users_table))
                if users.users:
                    session.execute(
                        sa.insert(users_table),
                        [
                            {"mailbox": u.mailbox, "display_name": u.display_name}
                            for u in users.users
                        ],
                    )
            updated = session.execute(
                sa.update(meta_table).where(meta_table.c.id == 1).values(**values)
            )
            if updated.rowcount == 0:  # type: ignore[attr-defined]
                session.execute(sa.insert(meta_table).values(id=1, **values))

    def clear_users(self) -> None:
        """Forget the list and its version (the next request asks without a version)."""
        with self._db.transaction() as session:
            session.execute(sa.delete(users_table))
            session.execute(sa.delete(meta_table))

    # -- meetings the cloud acknowledged ------------------------------------------------

    def meeting_seen(self, meeting: Meeting) -> None:
        where = (meetings_table.c.mailbox == meeting.mailbox) & (
            meetings_table.c.meeting_id == meeting.meeting_id
        )
        values = {
            "version": meeting.version[:1024],
            "keyword": meeting.keyword is not None,
            "updated_at": self._now(),
        }
        with self._db.transaction() as session:
            updated = session.execute(sa.update(meetings_table).where(where).values(**values))
            if updated.rowcount == 0:  # type: ignore[attr-defined]
                session.execute(
                    sa.insert(meetings_table).values(
                        mailbox=meeting.mailbox, meeting_id=meeting.meeting_id, **values
                    )
                )

    def meeting_gone(self, mailbox: str, meeting_id: str) -> None:
        with self._db.transaction() as session:
            session.execute(
                sa.delete(meetings_table).where(
                    meetings_table.c.mailbox == mailbox, meetings_table.c.meeting_id == meeting_id
                )
            )

    def retain(self, mailbox: str, meeting_ids: frozenset[str]) -> None:
        with self._db.transaction() as session:
            known = session.scalars(
                sa.select(meetings_table.c.meeting_id).where(meetings_table.c.mailbox == mailbox)
            ).all()
            for meeting_id in set(known) - meeting_ids:
                session.execute(
                    sa.delete(meetings_table).where(
                        meetings_table.c.mailbox == mailbox,
                        meetings_table.c.meeting_id == meeting_id,
                    )
                )

    def meeting_counts(self) -> dict[str, tuple[int, int]]:
        """mailbox -> (meetings, of which with a keyword)."""
        with self._db.transaction() as session:
            rows = session.execute(
                sa.select(
                    meetings_table.c.mailbox,
                    sa.func.count(),
                    sa.func.sum(sa.case((meetings_table.c.keyword, 1), else_=0)),
                ).group_by(meetings_table.c.mailbox)
            ).all()
        return {r[0]: (int(r[1]), int(r[2] or 0)) for r in rows}

    # -- statuses ----------------------------------------------------------------------

    def status(self, mailbox: str) -> UserStatusRow | None:
        with self._db.transaction() as session:
            row = session.execute(
                sa.select(status_table).where(status_table.c.mailbox == mailbox)
            ).first()
        return None if row is None else UserStatusRow(*row)

    def statuses(self) -> dict[str, UserStatusRow]:
        with self._db.transaction() as session:
            rows = session.execute(sa.select(status_table)).all()
        return {r.mailbox: UserStatusRow(*r) for r in rows}

    def set_status(
        self, mailbox: str, status: str, reason: str, oof: dict[str, Any] | None
    ) -> bool:
        """Record a status; returns True when it differs from the last one (to be sent)."""
        current = self.status(mailbox)
        if current is not None and (current.status, current.reason, current.out_of_office) == (
            status,
            reason[:1000],
            oof,
        ):
            return not current.reported
        values = {
            "status": status,
            "reason": reason[:1000],
            "out_of_office": oof,
            "reported": False,
            "updated_at": self._now(),
        }
        with self._db.transaction() as session:
            if current is None:
                session.execute(sa.insert(status_table).values(mailbox=mailbox, **values))
            else:
                session.execute(
                    sa.update(status_table)
                    .where(status_table.c.mailbox == mailbox)
                    .values(**values)
                )
        return True

    def mark_reported(self, mailbox: str, status: str, reason: str) -> None:
        with self._db.transaction() as session:
            session.execute(
                sa.update(status_table)
                .where(
                    status_table.c.mailbox == mailbox,
                    status_table.c.status == status,
                    status_table.c.reason == reason[:1000],
                )
                .values(reported=True)
            )

    # -- removed users -------------------------------------------------------------------

    def forget_user(self, mailbox: str, *, pending: bool) -> None:
        """Drop a removed user's rows; ``pending``: the cloud still has to be told."""
        with self._db.transaction() as session:
            session.execute(sa.delete(meetings_table).where(meetings_table.c.mailbox == mailbox))
            session.execute(sa.delete(status_table).where(status_table.c.mailbox == mailbox))
            session.execute(sa.delete(removals_table).where(removals_table.c.mailbox == mailbox))
            if pending:
                session.execute(
                    sa.insert(removals_table).values(mailbox=mailbox, since=self._now())
                )

    def pending_removals(self) -> list[str]:
        with self._db.transaction() as session:
            return list(session.scalars(sa.select(removals_table.c.mailbox)).all())

    def removal_done(self, mailbox: str) -> None:
        with self._db.transaction() as session:
            session.execute(sa.delete(removals_table).where(removals_table.c.mailbox == mailbox))
