"""EWS streaming notifications: as few long-lived connections as Exchange allows.

Exchange takes at most 200 subscriptions in one ``GetStreamingEvents`` request and closes a
streaming connection after at most 30 minutes. So the watched mailboxes are split into
groups of at most :data:`MAX_GROUP` (each mailbox subscribed through its own impersonation;
the subscriptions belong to the service account, so one request can carry the group's), and
each group has one thread holding one connection, reopened before the limit
(``connection_minutes`` < 30, default 29).

A notification only says *which* mailbox changed: ``on_change(mailbox)`` makes the sync
engine run ``SyncFolderItems`` from its persisted state, which is the source of truth. So
whenever a mailbox gets a new subscription — at start, or after an error, which drops the
group's subscriptions — it is reported once: anything that happened while it was not
subscribed is picked up, nothing is missed. A renewal (the server closed the connection at
``connection_minutes``) keeps the subscriptions, whose events Exchange queues until the next
``GetStreamingEvents``, so it reports nothing.

Stopping is prompt. A group's thread spends its life blocked reading the streaming
response (exchangelib's ``GetStreamingEvents`` is a generator over a ``requests`` response
opened with ``stream=True``), so a stop flag alone would be seen only at the next
notification or at the connection's end — up to 29 minutes later. ``stop()`` therefore
also shuts down the socket under the group's live response, from the stopping thread:
the blocked read returns at once (end of stream or an error) and the thread ends. The
response is captured by a small subclass of exchangelib's own service (its
``_get_response`` hook); exchangelib offers no public handle on it, and nothing else
does this, hence this code.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from exchangelib.properties import Notification
from exchangelib.services import GetStreamingEvents, SubscribeToStreaming

from hybridge.calendar.errors import BackendError, CalendarSettingsError
from hybridge.calendar.ews.backend import EwsBackend, calendar_folder_id

log = logging.getLogger(__name__)

#: Exchange: "a maximum of 200 subscriptions ... per GetStreamingEvents request".
MAX_GROUP = 200
#: Exchange closes a streaming connection after 30 minutes at most.
MAX_CONNECTION_MINUTES = 30
_EVENT_TYPES = ("CreatedEvent", "ModifiedEvent", "DeletedEvent")
#: ``stop()`` waits this long in all for the groups' threads (each is interrupted first).
STOP_TIMEOUT = 5.0


def _interrupt(response: Any) -> None:
    """Shut down the socket under a streaming ``requests`` response (any thread).

    ``shutdown`` (not ``close``) is what wakes a thread blocked in ``poll``/``recv`` on
    that socket; the plain socket's method is used on a TLS socket so that the TLS object
    the reader is using is left alone (the reader sees end of stream and cleans up).
    """
    connection = getattr(getattr(response, "raw", None), "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    # Already closed or reset (OSError): the reader is ending anyway.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _StoppableStreamingEvents(GetStreamingEvents):  # type: ignore[misc]
    """exchangelib's ``GetStreamingEvents``, handing its live response to ``on_response``."""

    def __init__(self, *args: Any, on_response: Callable[[Any], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_response = on_response

    def _get_response(self, payload: Any, api_version: Any) -> Any:
        response = super()._get_response(payload, api_version)
        self._on_response(response)
        return response


def group_mailboxes(mailboxes: Iterable[str], size: int = MAX_GROUP) -> list[tuple[str, ...]]:
    """Split (sorted, de-duplicated) mailboxes into groups of at most ``size``."""
    if not 1 <= size <= MAX_GROUP:
        raise CalendarSettingsError(f"group size {size!r} must be 1..{MAX_GROUP}")
    ordered = sorted({sys.intern(m.lower()) for m in mailboxes})  # shared with the engine
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
        self._response_lock = threading.Lock()
        self._response: Any = None  # the live streaming response, while there is one
        self._subscriptions: dict[str, str] = {}  # subscription id -> mailbox
        self._anchor: Any = None

    def _subscribe(self) -> list[str]:
        """Subscribe the group's mailboxes that have no subscription; returns those."""
        fresh: list[str] = []
        for mailbox in self.mailboxes:
            if self.stopping.is_set():
                return fresh  # up to 200 round trips: do not make a stop wait for them
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
            fresh.append(mailbox)
        return fresh

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                fresh = self._subscribe()
                if not self._subscriptions:
                    self.stopping.wait(self.retry_seconds)
                    continue
                if self._anchor is None:
                    # Its own connection: a streaming response holds it for minutes.
                    self._anchor = self.backend.new_streaming_account(
                        next(iter(self._subscriptions.values()))
                    )
                self.connections += 1
                # Catch up where events may have been missed: a new subscription (first start,
                # or after an error cleared them all). A plain renewal keeps its
                # subscriptions, and Exchange queues their events between connections, so
                # it needs none (15,000 needless syncs every 29 minutes otherwise).
                for mailbox in fresh:
                    self.on_change(mailbox)
                service = _StoppableStreamingEvents(
                    account=self._anchor, on_response=self._set_response
                )
                events = service.call(
                    subscription_ids=list(self._subscriptions), connection_timeout=self.minutes
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
                if self.stopping.is_set():
                    break  # our own stop() cut the connection: not a failure
                if isinstance(exc, BackendError):
                    err = exc
                else:
                    err = self.backend.translate(exc, self.mailboxes[0])
                log.info("streaming group of %s ended: %s", self.mailboxes[0], err)
                self._subscriptions.clear()
                self._close_anchor()
                self.stopping.wait(self.retry_seconds)
            finally:
                with self._response_lock:
                    self._response = None
        self._close_anchor()

    def _set_response(self, response: Any) -> None:
        with self._response_lock:
            self._response = response
            stopping = self.stopping.is_set()
        if stopping:
            # stop() came while the request was being sent: it found no response to cut.
            _interrupt(response)

    @property
    def live(self) -> bool:
        """True while the group's streaming response is open."""
        with self._response_lock:
            return self._response is not None

    def halt(self) -> None:
        """Ask the thread to end and cut its live connection, if any; does not wait."""
        with self._response_lock:
            self.stopping.set()
            response = self._response
        if response is not None:
            _interrupt(response)

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

    @property
    def live_connections(self) -> int:
        """Groups whose streaming response is open right now."""
        return sum(1 for g in self._groups if g.live)

    def watch(self, mailboxes: Iterable[str], on_change: Callable[[str], None]) -> None:
        """Watch exactly ``mailboxes``: regroup and reconnect (see :class:`ChangeNotifier`)."""
        self.stop()
        self._groups = [
            _Group(self.backend, group, on_change, self.connection_minutes, self.retry_seconds)
            for group in group_mailboxes(mailboxes, self.group_size)
        ]
        for group in self._groups:
            group.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop every group: each live connection is cut at once, then the threads are
        joined within ``timeout`` seconds in all (a thread still sending a request, or
        stuck in a connect, is left to end by itself: it is a daemon and will not renew)."""
        groups, self._groups = self._groups, []
        for group in groups:
            group.halt()
        deadline = time.monotonic() + timeout
        for group in groups:
            group.join(max(0.0, deadline - time.monotonic()))
        late = [g.name for g in groups if g.is_alive()]
        if late:
            log.warning("streaming groups still ending after %.1f s: %s", timeout, late)
