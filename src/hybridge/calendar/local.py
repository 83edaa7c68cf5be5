"""A local stand-in for the cloud's calendar service: :class:`MeetingSink` and
:class:`UserSource` on a SQLite file.

The cloud side (meetings sent to the cloud over the control channel, the enabled-user list
pushed from the portal) is not built yet. Until it is, this runs the sync engine for real —
in tests, in the benchmark and in the demo — with the same contract the cloud will honour:
every call idempotent, keyed by (mailbox, meeting id). It is not a mock: it stores what it
is told, counts each delivery, and answers keyword meetings with join details from the
admin's template.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from hybridge.calendar.interfaces import UserStatus
from hybridge.calendar.model import Meeting
from hybridge.core.meetings import JoinDetails, JoinTemplate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meetings (
    mailbox TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    version TEXT NOT NULL,
    organizer TEXT NOT NULL,
    subject TEXT NOT NULL,
    start TEXT NOT NULL,
    start_tz TEXT NOT NULL,
    end TEXT NOT NULL,
    end_tz TEXT NOT NULL,
    recurrence TEXT,
    attendees TEXT NOT NULL,
    location TEXT NOT NULL,
    keyword TEXT,
    PRIMARY KEY (mailbox, meeting_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_status (
    mailbox TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS enabled_users (mailbox TEXT PRIMARY KEY);
"""


class LocalCalendarService:
    """Meetings, user statuses and enabled users in one SQLite file (thread-safe)."""

    def __init__(
        self,
        path: Path,
        *,
        template: JoinTemplate | None = None,
        join_host: str = "meet.example.com",
    ) -> None:
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.template = template or JoinTemplate()
        self.join_host = join_host

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- UserSource ---------------------------------------------------------------------------

    def enable(self, *mailboxes: str) -> None:
        """Enable users for the calendar service (what the portal's toggle will do)."""
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO enabled_users VALUES (?)",
                [(m.lower(),) for m in mailboxes],
            )

    def disable(self, *mailboxes: str) -> None:
        with self._lock:
            self._conn.executemany(
                "DELETE FROM enabled_users WHERE mailbox = ?", [(m.lower(),) for m in mailboxes]
            )

    def enabled_mailboxes(self) -> frozenset[str]:
        """See :meth:`UserSource.enabled_mailboxes`."""
        with self._lock:
            rows = self._conn.execute("SELECT mailbox FROM enabled_users").fetchall()
        return frozenset(r[0] for r in rows)

    # -- MeetingSink --------------------------------------------------------------------------

    def join_details_for(self, meeting: Meeting) -> JoinDetails:
        """Stable join details for a meeting: the same meeting always gets the same URL."""
        digest = hashlib.sha256(f"{meeting.mailbox}\0{meeting.meeting_id}".encode()).hexdigest()
        number = str(int(digest[:12], 16) % 10**9).zfill(9)
        return JoinDetails(
            f"https://{self.join_host}/j/{digest[:16]}",
            self.template,
            sip_address=f"{number}@{self.join_host}",
            meeting_number=f"{number[:3]} {number[3:6]} {number[6:]}",
        )

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        """See :meth:`MeetingSink.meeting_changed`: upsert, and join details if keyworded."""
        keyword = meeting.keyword
        row = (
            meeting.mailbox,
            meeting.meeting_id,
            meeting.version,
            meeting.organizer,
            meeting.subject,
            meeting.start.isoformat(),
            meeting.start_tz,
            meeting.end.isoformat(),
            meeting.end_tz,
            meeting.recurrence.rrule if meeting.recurrence else None,
            json.dumps([[a.address, a.role] for a in meeting.attendees]),
            meeting.location,
            keyword.text if keyword else None,
        )
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO meetings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row
            )
            self._conn.execute(
                "INSERT INTO deliveries (kind, mailbox, meeting_id, version) VALUES (?,?,?,?)",
                ("upsert", meeting.mailbox, meeting.meeting_id, meeting.version),
            )
            self._conn.execute("COMMIT")
        return self.join_details_for(meeting) if keyword else None

    def meeting_deleted(self, mailbox: str, meeting_id: str) -> None:
        """See :meth:`MeetingSink.meeting_deleted`."""
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "DELETE FROM meetings WHERE mailbox = ? AND meeting_id = ?",
                (mailbox.lower(), meeting_id),
            )
            self._conn.execute(
                "INSERT INTO deliveries (kind, mailbox, meeting_id, version) VALUES (?,?,?,'')",
                ("delete", mailbox.lower(), meeting_id),
            )
            self._conn.execute("COMMIT")

    def retain_only(self, mailbox: str, meeting_ids: frozenset[str]) -> None:
        """See :meth:`MeetingSink.retain_only`."""
        with self._lock:
            known = self._conn.execute(
                "SELECT meeting_id FROM meetings WHERE mailbox = ?", (mailbox.lower(),)
            ).fetchall()
            gone = [(mailbox.lower(), r[0]) for r in known if r[0] not in meeting_ids]
            self._conn.executemany(
                "DELETE FROM meetings WHERE mailbox = ? AND meeting_id = ?", gone
            )

    def user_status(self, mailbox: str, status: UserStatus, reason: str) -> None:
        """See :meth:`MeetingSink.user_status`."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO user_status VALUES (?,?,?)",
                (mailbox.lower(), status, reason),
            )

    def user_removed(self, mailbox: str) -> None:
        """See :meth:`MeetingSink.user_removed`."""
        with self._lock:
            self._conn.execute("DELETE FROM meetings WHERE mailbox = ?", (mailbox.lower(),))
            self._conn.execute("DELETE FROM user_status WHERE mailbox = ?", (mailbox.lower(),))

    # -- what the portal would show -----------------------------------------------------------

    def meetings(self, mailbox: str) -> dict[str, dict[str, str | None]]:
        """The user's meetings list: meeting id -> its recorded fields."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT * FROM meetings WHERE mailbox = ? ORDER BY start", (mailbox.lower(),)
            )
            names = [d[0] for d in cur.description]
            return {r[1]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    def status_of(self, mailbox: str) -> tuple[str, str] | None:
        """(status, reason) shown for the user, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT status, reason FROM user_status WHERE mailbox = ?", (mailbox.lower(),)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def deliveries(self, mailbox: str | None = None) -> list[tuple[str, str, str, str]]:
        """Every delivery in order: (kind, mailbox, meeting id, version)."""
        query = "SELECT kind, mailbox, meeting_id, version FROM deliveries"
        args: tuple[str, ...] = ()
        if mailbox is not None:
            query += " WHERE mailbox = ?"
            args = (mailbox.lower(),)
        with self._lock:
            return [tuple(r) for r in self._conn.execute(query + " ORDER BY seq", args)]
