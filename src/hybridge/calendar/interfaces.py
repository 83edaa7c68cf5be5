"""The seams of the calendar connector: backends below, the cloud above.

- :class:`CalendarBackend` — one calendar server (EWS, CalDAV, later Graph) seen through one
  service account. Every backend passes the same contract suite
  (``tests/integration/calendar/test_sync_contract.py``).
- :class:`ChangeNotifier` — optional push (EWS streaming notifications): it only says
  *which* mailbox changed; the backend's change list stays the source of truth.
- :class:`MeetingSink` — where meetings go: the cloud's calendar service. It answers an
  upserted meeting with the join details to write (or None).
- :class:`UserSource` — which mailboxes are enabled for the calendar service (the cloud
  decides).

The cloud side of the last two is not built yet; ``calendar.local`` implements them on
SQLite so the engine runs (and is tested) for real in the meantime.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from hybridge.calendar.model import ChangePage, Meeting, OutOfOffice
from hybridge.core.meetings import JoinDetails

WriteOutcome = Literal["written", "unchanged"]
UserStatus = Literal["ok", "error", "paused"]


class CalendarBackend(Protocol):
    """One calendar server through one service account.

    Methods raise :class:`hybridge.calendar.errors.BackendError` subclasses only, each
    carrying the mailbox it concerns.
    """

    #: Short name for logs and metrics ("ews", "caldav").
    name: str

    def changes(self, mailbox: str, state: str | None, *, max_changes: int) -> ChangePage:
        """Changes of ``mailbox``'s calendar after ``state`` (None: everything, as upserts).

        At most ``max_changes``; ``ChangePage.more`` says whether to ask again with the
        returned state. Raises InvalidSyncStateError when the server refuses ``state``.
        """
        ...

    def read(self, mailbox: str, meeting_id: str) -> Meeting:
        """The meeting as it is now; raises MeetingNotFoundError when it is gone."""
        ...

    def write_join_details(
        self, mailbox: str, meeting_id: str, details: JoinDetails | None
    ) -> WriteOutcome:
        """Put ``details`` into the meeting's body exactly once (None removes them).

        Reads the current body first, so the organizer's latest text is kept; returns
        "unchanged" without writing when the body is already right.
        """
        ...

    def out_of_office(self, mailbox: str, at: dt.datetime) -> OutOfOffice:
        """The mailbox's automatic-reply state, and whether it applies at ``at``."""
        ...

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""
        ...


class ChangeNotifier(Protocol):
    """Push notifications: calls ``on_change(mailbox)`` from its own threads."""

    def watch(self, mailboxes: Iterable[str], on_change: Callable[[str], None]) -> None:
        """Watch exactly ``mailboxes`` from now on (adds and drops subscriptions)."""
        ...

    def stop(self) -> None:
        """End every subscription and connection."""
        ...


class MeetingSink(Protocol):
    """The cloud's calendar service as the sync engine sees it. Every call is idempotent."""

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        """Record the meeting; return the join details it should carry (None: none)."""
        ...

    def meeting_deleted(self, mailbox: str, meeting_id: str) -> None:
        """Forget the meeting (nothing happens when it is unknown)."""
        ...

    def retain_only(self, mailbox: str, meeting_ids: frozenset[str]) -> None:
        """After a full resync: forget every meeting of ``mailbox`` not in ``meeting_ids``."""
        ...

    def user_status(self, mailbox: str, status: UserStatus, reason: str) -> None:
        """Show the user's calendar status (and why it is not ok) in the portal."""
        ...

    def user_removed(self, mailbox: str) -> None:
        """The user is no longer enabled: forget their meetings."""
        ...


class UserSource(Protocol):
    """The mailboxes enabled for the calendar service."""

    def enabled_mailboxes(self) -> frozenset[str]:
        """Lower-case primary SMTP addresses of every enabled user."""
        ...
