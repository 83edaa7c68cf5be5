"""EWS streaming notifications: as few long-lived connections as Exchange allows.

Exchange takes at most 200 subscriptions in one ``GetStreamingEvents`` request and closes a
streaming connection after at most 30 minutes. So the watched mailboxes are split into
groups of at most :data:`MAX_GROUP` (each mailbox subscribed through its own impersonation;
the subscriptions belong to the service account, so one request can carry the group's), and
each group has one thread holding one connection, reopened before the limit
(``connection_minutes`` < 30, default 29).

A notification only says *which* mailbox changed: ``on_change(mailbox)`` makes the sync
engine run ``SyncFolderItems`` from its persisted state, which is the source of truth. So
whenever a connection is (re)opened — start, renewal, error — every mailbox of its group is
reported once: anything that happened while it was down is picked up, nothing is missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from exchangelib.properties import Notification
from exchangelib.services import SubscribeToStreaming

from hybridge.calendar.errors import BackendError, CalendarSettingsError
from hybridge.calendar.ews.backend import EwsBackend, calendar_folder_id

log = logging.getLogger(__name__)

#: Exchange: "a maximum of 200 subscriptions ... per GetStreamingEvents request".
MAX_GROUP = 200
#: Exchange closes a streaming connection after 30 minutes at most.
MAX_CONNECTION_MINUTES = 30
_EVENT_TYPES = ("CreatedEvent", "ModifiedEvent", "DeletedEvent")


def group_mailboxes(mailboxes: Iterable[str], size: int = MAX_GROUP) -> list[tuple[str, ...]]:
    """Split (sorted, de-duplicated) mailboxes into groups of at most ``size``."""
    if not 1 <= size <= MAX_GROUP:
        raise CalendarSettingsError(f"group size {size!r} must be 1..{MAX_GROUP}")
    ordered = sorted({m.lower() for m in mailboxes})
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


class _Group(threading.Thread):
    """One streaming connection for up to 200 mailboxes, renewed until stopped."""

    def __init__(
        self,
        backend: EwsBackend,
        mailboxes: tuple[str, ...],
        on_change: Callable[[str], None],
        minutes: int,
        retry_seconds: float,
    ) -> None:
        super().__init__(name=f"ews-streaming-{mailboxes[0]}", daemon=True)
        self.backend = backend
        self.mailboxes = mailboxes
        self.on_change = on_change
        self.minutes = minutes
        self.retry_seconds = retry_seconds
        self.stopping = threading.Event()
        self.connections = 0
        self._subscriptions: dict[str, str] = {}  # subscription id -> mailbox
        self._anchor: Any = None

    def _subscribe(self) -> None:
        for mailbox in self.mailboxes:
            if mailbox in self._subscriptions.values():
                continue
            account = self.backend.account(mailbox)
            try:
                # The distinguished id, not account.calendar: no GetFolder round trips and
                # no folder tree kept per mailbox (15,000 of them on one connector).
                sid = SubscribeToStreaming(account=account).get(
                    folders=[calendar_folder_id(mailbox)], event_types=_EVENT_TYPES
                )
            except Exception as exc:  # one mailbox's failure is the engine's to report
                err = self.backend.translate(exc, mailbox)
                log.info("no streaming subscription for %s: %s", mailbox, err)
                continue
            self._subscriptions[sid] = mailbox

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._subscribe()
                if not self._subscriptions:
                    self.stopping.wait(self.retry_seconds)
                    continue
                if self._anchor is None:
                    # Its own connection: a streaming response holds it for minutes.
                    self._anchor = self.backend.new_streaming_account(
                        next(iter(self._subscriptions.values()))
                    )
                self.connections += 1
                for mailbox in self._subscriptions.values():
                    self.on_change(mailbox)  # catch up on anything missed while down
                events = self._anchor.calendar.get_streaming_events(
                    list(self._subscriptions), connection_timeout=self.minutes
                )
                for notification in events:
                    if self.stopping.is_set():
                        break
                    if isinstance(notification, Notification) and notification.events:
                        changed = self._subscriptions.get(notification.subscription_id or "")
                        if changed is not None:
                            self.on_change(changed)
                # The server closed at connection_minutes: loop and renew.
            except Exception as exc:  # the connection or a subscription failed: start over
                if isinstance(exc, BackendError):
                    err = exc
                else:
                    err = self.backend.translate(exc, self.mailboxes[0])
                log.info("streaming group of %s ended: %s", self.mailboxes[0], err)
                self._subscriptions.clear()
                self._close_anchor()
                self.stopping.wait(self.retry_seconds)
        self._close_anchor()

    def _close_anchor(self) -> None:
        if self._anchor is not None:
            self._anchor.protocol.close()
            self._anchor = None


class EwsStreamingNotifier:
    """:class:`~hybridge.calendar.interfaces.ChangeNotifier` for an :class:`EwsBackend`."""

    def __init__(
        self,
        backend: EwsBackend,
        *,
        group_size: int = MAX_GROUP,
        connection_minutes: int = 29,
        retry_seconds: float = 5.0,
    ) -> None:
        if not 1 <= connection_minutes < MAX_CONNECTION_MINUTES:
            # Renew *before* Exchange's 30-minute limit ends the connection for us.
            raise CalendarSettingsError(f"connection_minutes {connection_minutes!r} must be 1..29")
        group_mailboxes((), group_size)  # validates the size
        self.backend = backend
        self.group_size = group_size
        self.connection_minutes = connection_minutes
        self.retry_seconds = retry_seconds
        self._groups: list[_Group] = []

    @property
    def groups(self) -> list[tuple[str, ...]]:
        return [g.mailboxes for g in self._groups]

    @property
    def connections_opened(self) -> int:
        return sum(g.connections for g in self._groups)

    def watch(self, mailboxes: Iterable[str], on_change: Callable[[str], None]) -> None:
        """Watch exactly ``mailboxes``: regroup and reconnect (see :class:`ChangeNotifier`)."""
        self.stop()
        self._groups = [
            _Group(self.backend, group, on_change, self.connection_minutes, self.retry_seconds)
            for group in group_mailboxes(mailboxes, self.group_size)
        ]
        for group in self._groups:
            group.start()

    def stop(self) -> None:
        """Stop every group (each ends at its next notification or heartbeat)."""
        for group in self._groups:
            group.stopping.set()
        for group in self._groups:
            group.join(timeout=10)
        self._groups = []
