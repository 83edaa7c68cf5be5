"""The sync engine's cloud side on the connector: :class:`CloudMeetingSink` and
:class:`CloudUserSource` over :class:`~hybridge.connector.calendar_cloud.CloudCalendarApi`,
with what must survive a restart kept in the node database (``calendar_store``): the last
enabled-user list (a restart, or a cloud that cannot be reached, keeps watching these
mailboxes: a network error never drops a watched mailbox; only a list from the cloud
changes it), the meetings the cloud acknowledged, each user's last status, and removals
the cloud has not heard of yet.

A meeting the cloud cannot take raises (the engine keeps that page and retries it later:
nothing is missed); a status or a removal the cloud cannot take is kept and sent again by
``CalendarService``, so the engine's bookkeeping calls never fail on a network error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from hybridge.calendar.interfaces import UserStatus
from hybridge.calendar.model import Meeting
from hybridge.calendar.sync import Alarm
from hybridge.connector.calendar_cloud import (
    CalendarLinkError,
    CloudCalendarApi,
    CloudCalendarRefused,
    UserList,
)
from hybridge.connector.calendar_store import LinkStore
from hybridge.core.meetings import JoinDetails

log = structlog.get_logger(__name__)


class LinkAlarms:
    """The calendar link's alarms by code (thread-safe), for the page, the API and logs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._alarms: dict[str, tuple[Alarm, float]] = {}

    def raise_(self, alarm: Alarm) -> None:
        """Raise (or raise again, which keeps it fresh) ``alarm``; logged when new."""
        with self._lock:
            new = alarm.code not in self._alarms
            self._alarms[alarm.code] = (alarm, self._clock())
        if new:
            log.error("connector.calendar_alarm", code=alarm.code, message=alarm.message)

    def clear(self, code: str) -> None:
        with self._lock:
            if self._alarms.pop(code, None) is not None:
                log.info("connector.calendar_alarm_cleared", code=code)

    def expire(self, code: str, max_age: float) -> None:
        """Clear ``code`` if it was not raised again for ``max_age`` seconds (the failing
        call is retried meanwhile: still failing means raised again)."""
        with self._lock:
            held = self._alarms.get(code)
            stale = held is not None and self._clock() - held[1] > max_age
        if stale:
            self.clear(code)

    def active(self) -> list[Alarm]:
        with self._lock:
            return sorted((a for a, _ in self._alarms.values()), key=lambda a: a.code)


class CloudMeetingSink:
    """:class:`~hybridge.calendar.interfaces.MeetingSink` over the cloud's calendar API."""

    def __init__(
        self,
        api: CloudCalendarApi,
        store: LinkStore,
        alarms: LinkAlarms,
        on_unknown_user: Callable[[], None] = lambda: None,
    ) -> None:
        self.api = api
        self.store = store
        self.alarms = alarms
        self._on_unknown_user = on_unknown_user

    def _refused(self, exc: CloudCalendarRefused) -> None:
        if exc.status == 404:
            # The user was disabled on the cloud a moment ago (the protocol answers 404 for
            # a mailbox that is not enabled): not a fault, the user list is out of date.
            self._on_unknown_user()
            return
        # Any other 4xx (a field the cloud refused, 403 inactive connector) is a bug or a
        # misconfiguration on one side: tell the admin, keep going.
        self.alarms.raise_(Alarm("cloud_refused", str(exc)))

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        """See MeetingSink; raises CalendarLinkError (the engine retries the page later)."""
        try:
            details = self.api.put_meeting(meeting)
        except CloudCalendarRefused as exc:
            self._refused(exc)
            raise
        self.store.meeting_seen(meeting)
        return details

    def meeting_deleted(self, mailbox: str, meeting_id: str) -> None:
        try:
            self.api.delete_meeting(mailbox, meeting_id)
        except CloudCalendarRefused as exc:
            self._refused(exc)
            raise
        self.store.meeting_gone(mailbox, meeting_id)

    def retain_only(self, mailbox: str, meeting_ids: frozenset[str]) -> None:
        try:
            self.api.retain(mailbox, meeting_ids)
        except CloudCalendarRefused as exc:
            self._refused(exc)
            raise
        self.store.retain(mailbox, meeting_ids)

    def user_status(self, mailbox: str, status: UserStatus, reason: str) -> None:
        """Record the status and send it; a failed send is retried by the service."""
        current = self.store.status(mailbox)
        oof = current.out_of_office if current is not None else None
        if self.store.set_status(mailbox, status, reason, oof):
            self.send_status(mailbox)

    def send_status(self, mailbox: str) -> bool:
        """Send the recorded status of ``mailbox``; True when the cloud took it."""
        row = self.store.status(mailbox)
        if row is None:
            return True
        try:
            self.api.put_status(mailbox, row.status, row.reason, row.out_of_office)  # type: ignore[arg-type]
        except CloudCalendarRefused as exc:
            self._refused(exc)
            if exc.status == 404:  # no longer enabled: nothing to report to
                self.store.mark_reported(mailbox, row.status, row.reason)
            return False
        except CalendarLinkError as exc:
            log.info("connector.calendar_status_not_sent", mailbox=mailbox, error=str(exc))
            return False
        self.store.mark_reported(mailbox, row.status, row.reason)
        return True

    def user_removed(self, mailbox: str) -> None:
        """Forget the user here; tell the cloud now, or later if it cannot be reached."""
        try:
            self.api.forget_user(mailbox)
        except CalendarLinkError as exc:
            log.info("connector.calendar_removal_pending", mailbox=mailbox, error=str(exc))
            self.store.forget_user(mailbox, pending=True)
            return
        self.store.forget_user(mailbox, pending=False)

    def retry_removals(self) -> int:
        """Tell the cloud about removals it missed; returns how many are still pending."""
        left = 0
        for mailbox in self.store.pending_removals():
            try:
                self.api.forget_user(mailbox)
            except CalendarLinkError:
                left += 1
                continue
            self.store.removal_done(mailbox)
        return left


class CloudUserSource:
    """:class:`~hybridge.calendar.interfaces.UserSource`: the cloud's list, cached on disk.

    ``enabled_mailboxes`` never touches the network: it answers from the last list the
    cloud sent (persisted), so a cloud outage leaves every watched mailbox watched.
    ``refresh`` asks the cloud (``If-None-Match`` with the cached version).
    """

    def __init__(self, api: CloudCalendarApi, store: LinkStore, alarms: LinkAlarms) -> None:
        self.api = api
        self.store = store
        self.alarms = alarms
        self._lock = threading.Lock()
        self._cached = store.users()

    @property
    def current(self) -> UserList | None:
        with self._lock:
            return self._cached

    def enabled_mailboxes(self) -> frozenset[str]:
        """See UserSource: the last list from the cloud (empty before the first one)."""
        cached = self.current
        return cached.mailboxes if cached is not None else frozenset()

    def refresh(self) -> bool:
        """Ask the cloud for the list; True when it changed.

        Raises:
            CalendarLinkError: the cloud could not be asked or refused (the cached list stays).
        """
        cached = self.current
        try:
            fresh = self.api.users(None if cached is None else cached.version)
        except CloudCalendarRefused as exc:
            self.alarms.raise_(Alarm("cloud_refused", str(exc)))
            raise
        self.store.save_users(fresh)
        if fresh is None:
            return False
        with self._lock:
            self._cached = fresh
        changed = cached is None or cached.users != fresh.users
        if changed:
            log.info("connector.calendar_users", version=fresh.version, users=len(fresh.users))
        return changed

    def forget(self) -> None:
        """Deregistered: the list belonged to the old cloud."""
        with self._lock:
            self._cached = None
        self.store.clear_users()
