"""The Microsoft Graph calendar backend: Exchange Online without EWS or impersonation.

- ``changes``: Graph v1.0's documented delta query for calendars,
  ``GET /users/{id}/calendarView/delta?startDateTime=&endDateTime=`` (``events/delta``
  without a window is beta-only). One request per page (``Prefer: odata.maxpagesize``), so
  the engine persists the state after every page; the state is our small JSON holding the
  page's ``@odata.nextLink`` (more to come) or ``@odata.deltaLink`` (round finished).
- A calendar view returns a series as its *instances* (``seriesMasterId``), while the
  cloud wants one meeting per series with its recurrence: plain ``occurrence`` instances
  are folded into their series master, read once per page and delivered again only when
  its change key moved. An ``exception`` (a modified occurrence) is a meeting of its own
  (its id, times, subject and body, no rule; the master does not list it among its
  ``modified`` occurrences), and join details are written into it by its own id. A
  cancelled instance (``@removed``, or ``isCancelled`` on an attendee's copy) is a
  ``delete`` of that instance's id.
- Deleted items come as ``@removed`` with only their id, so a deleted series shows up as
  removed instance ids: the state keeps the ids and change keys of the series masters
  seen, and a page with removals re-reads them: 404 is a deleted series, a new change key
  (deleting an occurrence changes its master in Exchange) an upsert of the master.
- Every recurrence pattern maps onto the model's rule. What still cannot be carried (a
  malformed recurrence, a custom time zone) is delivered as it can be and *flagged*: a
  warning naming the meeting, and :meth:`GraphBackend.unmapped` lists it per mailbox until
  it maps cleanly again.
- The view's window is fixed by the first request of a round; when half of its future
  has passed, ``changes`` raises InvalidSyncStateError so the engine resyncs that mailbox
  with a window that starts now (and ``retain_only`` drops what fell out of it).
- ``write_join_details``: GET the event, ``apply_join_details`` on its body (text or
  HTML, kept as stored), PATCH the body with ``If-Match`` on the ETag read; on 412 (edited
  meanwhile) read and merge again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from hybridge.calendar.errors import (
    BackendError,
    InvalidSyncStateError,
    MeetingNotFoundError,
    MeetingValueError,
)
from hybridge.calendar.graph.client import GraphClient
from hybridge.calendar.graph.mapping import MappedEvent, map_event, out_of_office_from
from hybridge.calendar.graph.settings import GraphSettings
from hybridge.calendar.interfaces import WriteOutcome
from hybridge.calendar.model import Change, ChangePage, Meeting, OutOfOffice
from hybridge.core.meetings import BodyType, JoinDetails, apply_join_details

log = logging.getLogger(__name__)

_STATE_VERSION = 2
_MAX_WRITE_ATTEMPTS = 3
#: Every dateTimeTimeZone in UTC: unambiguous instants (the zone comes from the event).
_PREFER_UTC = 'outlook.timezone="UTC"'
#: Series masters remembered per mailbox (a bound on the state's size).
_MAX_SERIES = 5000
#: Flagged meetings remembered per mailbox (a bound on memory; the log has them all).
_MAX_FLAGS = 1000


@dataclass(frozen=True)
class DeltaState:
    """What ``changes`` persists: the link to follow, the window's end, and the series
    masters seen with their change keys."""

    link: str
    window_end: dt.date
    series: tuple[tuple[str, str], ...] = ()

    def encode(self) -> str:
        return json.dumps(
            {
                "v": _STATE_VERSION,
                "link": self.link,
                "window_end": self.window_end.isoformat(),
                "series": [list(s) for s in self.series],
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str, mailbox: str) -> DeltaState:
        """Parse a persisted state; raises InvalidSyncStateError for anything else."""
        try:
            data = json.loads(text)
            if data["v"] == 1:
                # Version 1 kept ids only: an unknown change key re-reads the master once.
                series = tuple((str(s), "") for s in data["series"])
            elif data["v"] == _STATE_VERSION:
                pairs = data["series"]
                if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                    raise ValueError("series must be [id, change key] pairs")
                series = tuple((str(i), str(k)) for i, k in pairs)
            else:
                raise ValueError(f"version {data['v']!r}")
            return cls(str(data["link"]), dt.date.fromisoformat(data["window_end"]), series)
        except (ValueError, KeyError, TypeError) as exc:
            # A state from another backend or an older format: start over with a resync.
            raise InvalidSyncStateError(
                f"the sync state of {mailbox!r} is not a Graph delta state; resyncing",
                mailbox=mailbox,
            ) from exc


def _version(event: dict[str, Any]) -> str:
    """The event's version as a Meeting carries it (change key, else ETag)."""
    return str(event.get("changeKey") or event.get("@odata.etag") or "")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class GraphBackend:
    """:class:`~hybridge.calendar.interfaces.CalendarBackend` over Microsoft Graph."""

    name = "graph"

    def __init__(
        self,
        settings: GraphSettings,
        *,
        ssl_context: ssl.SSLContext,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self._client = GraphClient(settings, ssl_context=ssl_context)
        self._clock = clock
        self._flags_lock = threading.Lock()
        self._flags: dict[str, dict[str, tuple[str, ...]]] = {}

    @classmethod
    def from_settings(cls, settings: GraphSettings, ssl_context: ssl.SSLContext) -> GraphBackend:
        """The backend for ``settings``, verifying TLS with ``ssl_context`` (the trust
        store's context for the calendar connector). No network I/O happens here."""
        return cls(settings, ssl_context=ssl_context)

    # -- urls -------------------------------------------------------------------------------

    def _user_url(self, mailbox: str) -> str:
        return f"{self.settings.graph_url}/users/{quote(mailbox, safe='@')}"

    def _event_url(self, mailbox: str, event_id: str) -> str:
        return f"{self._user_url(mailbox)}/events/{quote(event_id, safe='')}"

    def _initial(self, mailbox: str) -> DeltaState:
        now = self._clock()
        start = (now - dt.timedelta(days=self.settings.window_past_days)).date()
        end = (now + dt.timedelta(days=self.settings.window_future_days)).date()
        query = urlencode(
            {"startDateTime": f"{start}T00:00:00Z", "endDateTime": f"{end}T00:00:00Z"}
        )
        return DeltaState(f"{self._user_url(mailbox)}/calendarView/delta?{query}", end)

    # -- CalendarBackend --------------------------------------------------------------------

    def changes(self, mailbox: str, state: str | None, *, max_changes: int) -> ChangePage:
        """See :meth:`CalendarBackend.changes` (``max_changes`` is Graph's page size, in
        instances: a page may hold fewer meetings once occurrences are folded)."""
        key = mailbox.lower()
        current = self._initial(key) if state is None else DeltaState.decode(state, key)
        if state is not None:
            if not self._client.on_graph(current.link):
                # A state saved under another graph_url (the configuration moved): its
                # link must not receive our token; a resync is safe and recovers.
                raise InvalidSyncStateError(
                    f"the sync state of {key!r} points outside {self.settings.graph_url!r}; "
                    "refusing to send the Graph token there, resyncing",
                    mailbox=key,
                )
            half = dt.timedelta(days=self.settings.window_future_days / 2)
            if self._clock().date() + half > current.window_end:
                raise InvalidSyncStateError(
                    f"the calendar view of {key!r} ends {current.window_end}; resyncing to "
                    "move the window forward",
                    mailbox=key,
                )
        response = self._client.request(
            "GET",
            current.link,
            mailbox=key,
            what="the calendar delta",
            headers={"Prefer": f"odata.maxpagesize={max(1, max_changes)}, {_PREFER_UTC}"},
        )
        page = self._client.json_of(response, key, "the calendar delta")
        value = page.get("value")
        items = [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []
        changes, series = self._fold(key, items, dict(current.series))
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        link = next_link or delta_link
        if not link:
            raise BackendError(f"Graph delta page for {key!r} has neither link", mailbox=key)
        new = DeltaState(
            self._client.check_url(str(link)), current.window_end, tuple(series.items())
        )
        return ChangePage(tuple(changes), new.encode(), next_link is not None)

    def _fold(
        self, mailbox: str, items: list[dict[str, Any]], series: dict[str, str]
    ) -> tuple[list[Change], dict[str, str]]:
        """The page's items as meeting changes, and the known series masters after it.

        The last entry for an id wins (Graph may list an updated event as removed, then
        again as present); occurrences stand for their master, read once per page;
        exceptions are meetings of their own, read when the page gives only their times.
        """
        latest: dict[str, tuple[str, dict[str, Any] | None]] = {}  # id -> (kind, event)
        for item in items:
            item_id = str(item.get("id") or "")
            if not item_id:
                continue
            entry: tuple[str, dict[str, Any] | None]
            if "@removed" in item:
                key, entry = item_id, ("removed", None)
            elif item.get("type") == "occurrence" and item.get("seriesMasterId"):
                key, entry = str(item["seriesMasterId"]), ("master", None)
            elif item.get("type") == "exception":
                key, entry = item_id, ("instance", item if "subject" in item else None)
            else:
                key, entry = item_id, ("event", item)
            latest.pop(key, None)  # re-insert: the order follows the last entry
            latest[key] = entry
        if any(kind == "removed" for kind, _ in latest.values()):
            # A removed id may be an instance of a deleted series, or a cancelled
            # occurrence (its master changed): re-read the known masters.
            for master in list(series):
                latest.setdefault(master, ("recheck", None))
        changes: list[Change] = []
        for key, (kind, event) in latest.items():
            if kind == "removed":
                changes.append(Change("delete", key))
                series.pop(key, None)
                self._flag(mailbox, key, ())
                continue
            if event is None:
                try:
                    event = self._get_event(mailbox, key)
                except MeetingNotFoundError:
                    # Gone since the page was made (or the whole series was deleted).
                    changes.append(Change("delete", key))
                    series.pop(key, None)
                    self._flag(mailbox, key, ())
                    continue
                if kind in ("master", "recheck") and series.get(key) == _version(event):
                    # As we last delivered it: its occurrences came again (a series over
                    # several pages) or something else was removed.
                    continue
            mapped = self._map(mailbox, event)
            if mapped is None:
                continue
            if mapped.cancelled:
                # isCancelled: an attendee's copy of a cancelled meeting or occurrence.
                changes.append(Change("delete", key))
                series.pop(key, None)
                continue
            changes.append(Change("upsert", key, mapped.meeting))
            if event.get("type") == "seriesMaster" or event.get("recurrence"):
                series.pop(key, None)
                series[key] = mapped.meeting.version
        while len(series) > _MAX_SERIES:
            series.pop(next(iter(series)))
        return changes, series

    def _map(self, mailbox: str, event: dict[str, Any]) -> MappedEvent | None:
        """``map_event``, with what it could not carry flagged (log and :meth:`unmapped`)."""
        event_id = str(event.get("id") or "")
        try:
            mapped = map_event(mailbox, event)
        except (MeetingValueError, KeyError) as exc:
            log.warning("event %s of %s not delivered: %s", event_id, mailbox, exc)
            self._flag(mailbox, event_id, (f"not delivered: {exc}",))
            return None
        for problem in mapped.problems:
            log.warning("event %s of %s delivered without its rule: %s", event_id, mailbox, problem)
        self._flag(mailbox, event_id, mapped.problems)
        return mapped

    def _flag(self, mailbox: str, event_id: str, problems: tuple[str, ...]) -> None:
        with self._flags_lock:
            flags = self._flags.setdefault(mailbox, {})
            flags.pop(event_id, None)
            if problems:
                flags[event_id] = problems
                while len(flags) > _MAX_FLAGS:
                    flags.pop(next(iter(flags)))
            elif not flags:
                del self._flags[mailbox]

    def unmapped(self, mailbox: str) -> dict[str, tuple[str, ...]]:
        """Meetings of ``mailbox`` seen with something the model could not carry: meeting
        id -> the problems (a recurrence delivered without its rule, with its exact RRULE;
        an event not delivered at all). An entry goes when the meeting maps cleanly again
        or is deleted."""
        with self._flags_lock:
            return dict(self._flags.get(mailbox.lower(), {}))

    def _meeting(self, mailbox: str, event: dict[str, Any]) -> Meeting | None:
        mapped = self._map(mailbox, event)
        return None if mapped is None else mapped.meeting

    def _get_event(self, mailbox: str, meeting_id: str) -> dict[str, Any]:
        response = self._client.request(
            "GET",
            self._event_url(mailbox, meeting_id),
            mailbox=mailbox,
            what=f"event {meeting_id!r}",
            headers={"Prefer": _PREFER_UTC},
        )
        event: dict[str, Any] = self._client.json_of(response, mailbox, f"event {meeting_id!r}")
        return event

    def read(self, mailbox: str, meeting_id: str) -> Meeting:
        """See :meth:`CalendarBackend.read`."""
        key = mailbox.lower()
        meeting = self._meeting(key, self._get_event(key, meeting_id))
        if meeting is None:
            raise MeetingNotFoundError(f"{meeting_id!r} holds no usable event", mailbox=key)
        return meeting

    def write_join_details(
        self, mailbox: str, meeting_id: str, details: JoinDetails | None
    ) -> WriteOutcome:
        """See :meth:`CalendarBackend.write_join_details` (PATCH with If-Match)."""
        key = mailbox.lower()
        for _ in range(_MAX_WRITE_ATTEMPTS):
            event = self._get_event(key, meeting_id)
            body = event.get("body") or {}
            content_type = "html" if str(body.get("contentType")).lower() == "html" else "text"
            body_type: BodyType = "HTML" if content_type == "html" else "Text"
            current = str(body.get("content") or "")
            new = apply_join_details(current, details, body_type)
            if new == current:
                return "unchanged"
            headers = {"Prefer": _PREFER_UTC}
            if event.get("@odata.etag"):
                # RFC 9110 §13.1.1: write only over the version we read.
                headers["If-Match"] = str(event["@odata.etag"])
            response = self._client.request(
                "PATCH",
                self._event_url(key, meeting_id),
                mailbox=key,
                what=f"event {meeting_id!r}",
                headers=headers,
                json={"body": {"contentType": content_type, "content": new}},
            )
            if response.status_code == 412:
                continue  # edited since we read it: read again and merge
            return "written"
        raise BackendError(
            f"{meeting_id!r} kept changing while we wrote join details; will retry", mailbox=key
        )

    def out_of_office(self, mailbox: str, at: dt.datetime) -> OutOfOffice:
        """See :meth:`CalendarBackend.out_of_office` (``automaticRepliesSetting``)."""
        key = mailbox.lower()
        response = self._client.request(
            "GET",
            f"{self._user_url(key)}/mailboxSettings/automaticRepliesSetting",
            mailbox=key,
            what="the automatic replies",
            role="Application MailboxSettings.Read",
        )
        try:
            setting = self._client.json_of(response, key, "the automatic replies")
            return out_of_office_from(setting, at)
        except MeetingValueError as exc:
            raise BackendError(f"automatic replies of {key!r}: {exc}", mailbox=key) from exc

    def close(self) -> None:
        self._client.close()
