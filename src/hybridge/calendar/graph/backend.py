"""The Microsoft Graph calendar backend: Exchange Online without EWS or impersonation.

- ``changes``: Graph v1.0's documented delta query for calendars,
  ``GET /users/{id}/calendarView/delta?startDateTime=&endDateTime=`` (``events/delta``
  without a window is beta-only). One request per page (``Prefer: odata.maxpagesize``), so
  the engine persists the state after every page; the state is our small JSON holding the
  page's ``@odata.nextLink`` (more to come) or ``@odata.deltaLink`` (round finished).
- A calendar view returns a series as its *occurrences* (``seriesMasterId``), while the
  cloud wants one meeting per series with its recurrence: occurrences are folded into
  their series master, read once per page. Deleted items come as ``@removed`` with only
  their id, so a deleted series shows up as removed occurrence ids: the state keeps the
  ids of the series masters seen, and a page with removals re-reads them (404 = deleted).
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
from hybridge.calendar.graph.mapping import meeting_from_event, out_of_office_from
from hybridge.calendar.graph.settings import GraphSettings
from hybridge.calendar.interfaces import WriteOutcome
from hybridge.calendar.model import Change, ChangePage, Meeting, OutOfOffice
from hybridge.core.meetings import BodyType, JoinDetails, apply_join_details

log = logging.getLogger(__name__)

_STATE_VERSION = 1
_MAX_WRITE_ATTEMPTS = 3
#: Every dateTimeTimeZone in UTC: unambiguous instants (the zone comes from the event).
_PREFER_UTC = 'outlook.timezone="UTC"'
#: Series masters remembered per mailbox (a bound on the state's size).
_MAX_SERIES = 5000


@dataclass(frozen=True)
class DeltaState:
    """What ``changes`` persists: the link to follow, the window's end, known series."""

    link: str
    window_end: dt.date
    series: tuple[str, ...] = ()

    def encode(self) -> str:
        return json.dumps(
            {
                "v": _STATE_VERSION,
                "link": self.link,
                "window_end": self.window_end.isoformat(),
                "series": list(self.series),
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str, mailbox: str) -> DeltaState:
        """Parse a persisted state; raises InvalidSyncStateError for anything else."""
        try:
            data = json.loads(text)
            if data["v"] != _STATE_VERSION:
                raise ValueError(f"version {data['v']!r}")
            return cls(
                str(data["link"]),
                dt.date.fromisoformat(data["window_end"]),
                tuple(str(s) for s in data["series"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # A state from another backend or an older format: start over with a resync.
            raise InvalidSyncStateError(
                f"the sync state of {mailbox!r} is not a Graph delta state; resyncing",
                mailbox=mailbox,
            ) from exc


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
        changes, series = self._fold(key, items, list(current.series))
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        link = next_link or delta_link
        if not link:
            raise BackendError(f"Graph delta page for {key!r} has neither link", mailbox=key)
        new = DeltaState(self._client.check_url(str(link)), current.window_end, tuple(series))
        return ChangePage(tuple(changes), new.encode(), next_link is not None)

    def _fold(
        self, mailbox: str, items: list[dict[str, Any]], series: list[str]
    ) -> tuple[list[Change], list[str]]:
        """The page's items as meeting changes, and the known series masters after it.

        The last entry for an id wins (Graph may list an updated event as removed, then
        again as present); occurrences stand for their master, read once per page.
        """
        latest: dict[str, dict[str, Any] | None] = {}  # id -> event, None = removed/master
        kinds: dict[str, str] = {}
        for item in items:
            item_id = str(item.get("id") or "")
            if not item_id:
                continue
            if "@removed" in item:
                key, kind, value = item_id, "removed", None
            elif item.get("type") in ("occurrence", "exception") and item.get("seriesMasterId"):
                key, kind, value = str(item["seriesMasterId"]), "master", None
            else:
                key, kind, value = item_id, "event", item
            latest.pop(key, None)  # re-insert: the order follows the last entry
            latest[key], kinds[key] = value, kind
        if "removed" in kinds.values():
            # A removed id may be an occurrence of a deleted series: re-read the known masters.
            for master in series:
                if master not in latest:
                    latest[master], kinds[master] = None, "master"
        changes: list[Change] = []
        for key, event in latest.items():
            kind = kinds[key]
            if kind == "removed":
                changes.append(Change("delete", key))
                if key in series:
                    series.remove(key)
                continue
            if kind == "master":
                try:
                    meeting: Meeting | None = self.read(mailbox, key)
                except MeetingNotFoundError:
                    if key in series:
                        series.remove(key)
                        changes.append(Change("delete", key))
                    continue
            else:
                assert event is not None
                meeting = self._meeting(mailbox, event)
            if meeting is None:
                continue
            changes.append(Change("upsert", key, meeting))
            if meeting.recurrence is not None and key not in series:
                series.append(key)
        return changes, series[-_MAX_SERIES:]

    def _meeting(self, mailbox: str, event: dict[str, Any]) -> Meeting | None:
        try:
            return meeting_from_event(mailbox, event)
        except (MeetingValueError, KeyError) as exc:
            log.warning("event %s of %s not mapped: %s", event.get("id"), mailbox, exc)
            return None

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
