"""The CalDAV calendar backend: the ``caldav`` library, RFC 6578 sync-collection.

For calendar servers that are not Exchange (and tested against a real Radicale). The
service account reads and writes each user's calendar collection, found by the
``calendar_path`` template (``/{mailbox}/calendar/`` by default) — CalDAV's counterpart of
impersonation is the server's access rights (RFC 3744 ACLs, Radicale's rights file).

- ``changes``: one ``sync-collection`` REPORT from the persisted sync-token (RFC 6578
  §3.2); the token is the sync state. A server that refuses the token answers 403/409 with
  the ``DAV:valid-sync-token`` precondition: that is an InvalidSyncStateError, and the
  engine resyncs that mailbox from no token. The ``caldav`` library follows truncated
  results itself, so a page is always complete (``more`` is False).
- ``write_join_details``: the join details go into the master VEVENT's DESCRIPTION (RFC
  5545 §3.8.1.5, plain text), written with ``If-Match`` on the ETag we read (RFC 7232
  §3.1), so an edit made in between is never overwritten: on 412 we read and merge again.
- Out-of-office does not exist in CalDAV: ``out_of_office`` says ``unsupported``.

TLS: the server's certificate is verified against ``ca_bundle`` only (our trust store's
bundle file), never certifi. ``caldav`` uses niquests, which takes a CA file, not an
``SSLContext``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import icalendar
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error

from hybridge.calendar.caldav_recurrence import UnsupportedRuleError, recurrence_from_ical
from hybridge.calendar.errors import (
    BackendError,
    CalendarSettingsError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    InvalidSyncStateError,
    MailboxNotFoundError,
    MailboxThrottledError,
    MeetingNotFoundError,
)
from hybridge.calendar.interfaces import WriteOutcome
from hybridge.calendar.model import (
    Attendee,
    AttendeeRole,
    Change,
    ChangePage,
    Meeting,
    OutOfOffice,
)
from hybridge.core.meetings import JoinDetails, apply_join_details

log = logging.getLogger(__name__)

_VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"  # noqa: S105 - an XML element name
_MAX_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class CaldavSettings:
    """A CalDAV server and the service account that may read/write users' calendars."""

    url: str
    username: str
    ca_bundle: Path
    calendar_path: str = "/{mailbox}/calendar/"
    timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        # The service account's password crosses this connection: TLS only.
        if parts.scheme != "https" or not parts.hostname:
            raise CalendarSettingsError(f"CalDAV url {self.url!r} must be an https:// URL")
        if "{mailbox}" not in self.calendar_path or not self.calendar_path.startswith("/"):
            raise CalendarSettingsError(
                f"calendar_path {self.calendar_path!r} must start with / and contain {{mailbox}}"
            )
        if not self.username:
            raise CalendarSettingsError("username must not be empty")

    def calendar_url(self, mailbox: str) -> str:
        base = self.url.rstrip("/")
        return base + self.calendar_path.replace("{mailbox}", quote(mailbox.lower(), safe="@"))


def _zone_name(value: Any) -> str:
    tz = getattr(value, "tzinfo", None)
    if tz is None:
        return "UTC"
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key:
        return str(key)
    return "UTC" if value.utcoffset() == dt.timedelta(0) else str(tz)


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        # RFC 5545 §3.3.5 "floating" time has no zone; we read it as UTC.
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    # An all-day event (DATE): midnight UTC of that day.
    return dt.datetime.combine(value, dt.time(0), tzinfo=dt.UTC)


def _address(value: Any) -> str:
    text = str(value or "")
    return text[7:] if text.lower().startswith("mailto:") else text


def _recurrence(master: Any, cal: icalendar.Calendar, start: dt.datetime, tz: str) -> Any:
    """The series' rule with its EXDATEs and overridden instances; a rule the model cannot
    carry is logged at warning level and the meeting goes without one (never a wrong rule)."""
    uid = str(master.get("UID") or "")
    overrides = [
        c
        for c in cal.walk("VEVENT")
        if c.get("RECURRENCE-ID") is not None and str(c.get("UID") or "") == uid
    ]
    try:
        return recurrence_from_ical(master, overrides, start, tz)
    except UnsupportedRuleError as exc:
        log.warning("event %s delivered without its rule: %s", uid, exc)
        return None


def _master(cal: icalendar.Calendar) -> Any:
    events = [c for c in cal.walk("VEVENT") if c.get("RECURRENCE-ID") is None]
    return events[0] if events else None


def meeting_from_ical(mailbox: str, href: str, etag: str, data: str) -> Meeting | None:
    """A :class:`Meeting` from iCalendar text, or None when it holds no event (a task).

    The master VEVENT is the meeting; its RRULE, EXDATEs and the overridden instances in
    the same resource (RECURRENCE-ID) are its recurrence (``caldav_recurrence``).
    """
    cal = icalendar.Calendar.from_ical(data)
    event = _master(cal)
    if event is None:
        return None
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if event.get("DTEND") is not None else start
    attendees: list[Attendee] = []
    for value in event.get("ATTENDEE") or []:
        params = getattr(value, "params", {})
        role: AttendeeRole = "required"
        if params.get("CUTYPE", "").upper() in ("ROOM", "RESOURCE"):
            role = "resource"
        elif params.get("ROLE", "").upper() == "OPT-PARTICIPANT":
            role = "optional"
        if _address(value).count("@") == 1:
            attendees.append(Attendee(_address(value), role))
    if not isinstance(event.get("ATTENDEE"), list) and event.get("ATTENDEE") is not None:
        single = event.get("ATTENDEE")
        attendees = [Attendee(_address(single))] if _address(single).count("@") == 1 else []
    return Meeting(
        mailbox=mailbox,
        meeting_id=href,
        version=etag,
        organizer=_address(event.get("ORGANIZER")) or mailbox,
        subject=str(event.get("SUMMARY") or ""),
        start=_aware(start),
        end=_aware(end),
        start_tz=_zone_name(start),
        end_tz=_zone_name(end),
        body=str(event.get("DESCRIPTION") or ""),
        body_type="Text",
        location=str(event.get("LOCATION") or ""),
        attendees=tuple(attendees),
        recurrence=_recurrence(event, cal, _aware(start), _zone_name(start)),
        uid=str(event.get("UID") or ""),
    )


class CaldavBackend:
    """:class:`~hybridge.calendar.interfaces.CalendarBackend` over CalDAV."""

    name = "caldav"

    def __init__(self, settings: CaldavSettings, password: str) -> None:
        self.settings = settings
        self._client = DAVClient(
            settings.url,
            username=settings.username,
            password=password,
            auth_type="basic",
            ssl_verify_cert=str(settings.ca_bundle),
            timeout=int(settings.timeout_seconds),
        )

    def _translate(self, exc: BaseException, mailbox: str, *, with_token: bool) -> BackendError:
        if isinstance(exc, caldav_error.DAVError):
            status = getattr(exc, "status", None)
            reason = str(getattr(exc, "reason", ""))
            preconditions = getattr(exc, "preconditions", None) or []
            if _VALID_SYNC_TOKEN in preconditions or (
                with_token and (status in (403, 409) or reason == "Forbidden")
            ):
                # RFC 6578 §3.2: an unusable token is refused with DAV:valid-sync-token.
                return InvalidSyncStateError(
                    f"the CalDAV server refused the sync token of {mailbox!r}", mailbox=mailbox
                )
            if status == 401 or reason == "Unauthorized":
                return CredentialsRejectedError(
                    "the CalDAV server answered 401 to the service account "
                    f"{self.settings.username!r}: password rejected (often expired)",
                    mailbox=mailbox,
                )
            if status == 403 or reason == "Forbidden":
                return ImpersonationDeniedError(
                    f"the service account {self.settings.username!r} may not access the "
                    f"calendar of {mailbox!r} (HTTP 403): grant it read/write rights",
                    mailbox=mailbox,
                )
            if isinstance(exc, caldav_error.NotFoundError) or status == 404:
                return MailboxNotFoundError(
                    f"no calendar for {mailbox!r} at {self.settings.calendar_url(mailbox)}",
                    mailbox=mailbox,
                )
            if status in (429, 503):
                return MailboxThrottledError(
                    f"the CalDAV server is busy for {mailbox!r}",
                    mailbox=mailbox,
                    retry_after_seconds=5.0,
                )
        return BackendError(
            f"CalDAV call for {mailbox!r} failed: {type(exc).__name__}: {str(exc)[:300]}",
            mailbox=mailbox,
        )

    def _calendar(self, mailbox: str) -> Any:
        return self._client.calendar(url=self.settings.calendar_url(mailbox))  # type: ignore[no-untyped-call, unused-ignore]

    def _href(self, url: Any) -> str:
        return unquote(urlsplit(str(url)).path)

    def changes(self, mailbox: str, state: str | None, *, max_changes: int) -> ChangePage:
        """See :meth:`CalendarBackend.changes` (``max_changes`` is not honoured: CalDAV
        servers decide truncation, and the library follows it)."""
        key = mailbox.lower()
        try:
            coll = self._calendar(key).get_objects_by_sync_token(
                sync_token=state, load_objects=True, disable_fallback=True
            )
        except Exception as exc:  # translated at the boundary
            raise self._translate(exc, key, with_token=state is not None) from exc
        deleted = {self._href(u) for u in coll.deleted_urls}
        changes: list[Change] = []
        for obj in coll.objects:
            href = self._href(obj.url)
            if href in deleted or not getattr(obj, "data", None):
                continue
            etag = str((obj.props or {}).get("{DAV:}getetag", ""))
            meeting = meeting_from_ical(key, href, etag, obj.data)
            if meeting is not None:
                changes.append(Change("upsert", href, meeting))
        changes.extend(Change("delete", href) for href in sorted(deleted))
        return ChangePage(tuple(changes), str(coll.sync_token), False)

    def _get(self, mailbox: str, href: str) -> tuple[str, str]:
        url = self.settings.url.rstrip("/") + quote(href, safe="/@")
        try:
            response = self._client.request(url, "GET")
        except Exception as exc:  # translated at the boundary
            raise self._translate(exc, mailbox, with_token=False) from exc
        if response.status == 404:
            raise MeetingNotFoundError(f"{href!r} is gone from {mailbox!r}", mailbox=mailbox)
        if response.status >= 400:
            raise BackendError(f"GET {href!r} answered {response.status}", mailbox=mailbox)
        return str(response.raw), str(response.headers.get("ETag", ""))

    def read(self, mailbox: str, meeting_id: str) -> Meeting:
        """See :meth:`CalendarBackend.read`."""
        key = mailbox.lower()
        data, etag = self._get(key, meeting_id)
        meeting = meeting_from_ical(key, meeting_id, etag, data)
        if meeting is None:
            raise MeetingNotFoundError(f"{meeting_id!r} holds no event", mailbox=key)
        return meeting

    def write_join_details(
        self, mailbox: str, meeting_id: str, details: JoinDetails | None
    ) -> WriteOutcome:
        """See :meth:`CalendarBackend.write_join_details` (PUT with If-Match)."""
        key = mailbox.lower()
        url = self.settings.url.rstrip("/") + quote(meeting_id, safe="/@")
        for _ in range(_MAX_WRITE_ATTEMPTS):
            data, etag = self._get(key, meeting_id)
            cal = icalendar.Calendar.from_ical(data)
            event = _master(cal)
            if event is None:
                raise MeetingNotFoundError(f"{meeting_id!r} holds no event", mailbox=key)
            body = str(event.get("DESCRIPTION") or "")
            new = apply_join_details(body, details, "Text")
            if new == body:
                return "unchanged"
            if "DESCRIPTION" in event:
                del event["DESCRIPTION"]
            if new:
                event.add("DESCRIPTION", new)
            headers = {"Content-Type": "text/calendar; charset=utf-8"}
            if etag:
                headers["If-Match"] = etag
            try:
                response = self._client.put(url, cal.to_ical().decode(), headers)
            except Exception as exc:  # translated at the boundary
                raise self._translate(exc, key, with_token=False) from exc
            if response.status == 412:
                continue  # edited since we read it: read again and merge
            if response.status >= 400:
                raise BackendError(f"PUT {meeting_id!r} answered {response.status}", mailbox=key)
            return "written"
        raise BackendError(
            f"{meeting_id!r} kept changing while we wrote join details; will retry", mailbox=key
        )

    def out_of_office(self, mailbox: str, at: dt.datetime) -> OutOfOffice:
        """CalDAV has no automatic replies: always ``unsupported``."""
        return OutOfOffice("unsupported", False)

    def close(self) -> None:
        self._client.close()
