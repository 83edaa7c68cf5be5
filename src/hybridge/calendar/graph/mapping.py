"""Graph ``event`` JSON <-> :class:`~hybridge.calendar.model.Meeting`, time zones included.

Times: the backend asks Graph for every ``dateTimeTimeZone`` in UTC (``Prefer:
outlook.timezone="UTC"``), so ``start.dateTime`` is an unambiguous instant; the meeting's
*own* zone comes from ``originalStartTimeZone``, which Exchange stores as a Windows zone
name ("W. Europe Standard Time"), sometimes as an IANA name, or as ``tzone://Microsoft/Utc``.
Windows names are mapped to IANA with CLDR's windowsZones table as shipped in
``tzlocal.windows_tz`` (a dependency of exchangelib); writing that table by hand would
only make it go stale.

Recurrence: Graph's ``patternedRecurrence`` maps to the model's subset (daily, weekly on
days; ended by count or date); other patterns (monthly, yearly) are not mapped, as in the
other backends.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from tzlocal.windows_tz import win_tz

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.model import (
    WEEKDAYS,
    Attendee,
    AttendeeRole,
    Meeting,
    OutOfOffice,
    Recurrence,
    canonical_zone,
    zone,
)

log = logging.getLogger(__name__)

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
_UTC_NAMES = frozenset({"utc", "tzone://microsoft/utc", "coordinated universal time"})
_ROLES: dict[str, AttendeeRole] = {
    "required": "required",
    "optional": "optional",
    "resource": "resource",
}


def iana_zone(name: str | None) -> str | None:
    """The IANA name for a Graph time zone (Windows or IANA), None when unknown/custom."""
    if not name:
        return None
    if name.lower() in _UTC_NAMES:
        return "UTC"
    candidate = win_tz.get(name, name)
    try:
        return canonical_zone(candidate)
    except MeetingValueError:
        return None


def parse_date_time(value: dict[str, Any] | None) -> dt.datetime:
    """An aware datetime from a ``dateTimeTimeZone`` (seven fractional digits allowed)."""
    if not value or not value.get("dateTime"):
        raise MeetingValueError(f"dateTimeTimeZone {value!r} has no dateTime")
    text = _FRACTION.sub(lambda m: m.group(1), str(value["dateTime"])).replace("Z", "+00:00")
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise MeetingValueError(f"dateTime {value['dateTime']!r} is not ISO 8601") from exc
    if naive.tzinfo is not None:
        return naive
    zone_name = iana_zone(value.get("timeZone")) or "UTC"
    return naive.replace(tzinfo=zone(zone_name))


def _address(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    email = value.get("emailAddress") or {}
    return str(email.get("address") or "")


def recurrence(value: dict[str, Any] | None) -> Recurrence | None:
    """The model's Recurrence for a Graph ``patternedRecurrence`` (None: none or unmapped)."""
    if not value:
        return None
    pattern, span = value.get("pattern") or {}, value.get("range") or {}
    kind = pattern.get("type")
    if kind not in ("daily", "weekly"):
        log.info("Graph recurrence pattern %r is not mapped", kind)
        return None
    days = tuple(WEEKDAYS[_DAYS.index(d)] for d in pattern.get("daysOfWeek") or () if d in _DAYS)
    count = until = None
    if span.get("type") == "numbered" and span.get("numberOfOccurrences"):
        count = int(span["numberOfOccurrences"])
    elif span.get("type") == "endDate" and span.get("endDate"):
        until = dt.date.fromisoformat(span["endDate"])
    return Recurrence(
        "DAILY" if kind == "daily" else "WEEKLY",
        int(pattern.get("interval") or 1),
        days if kind == "weekly" else (),
        count,
        until,
    )


def meeting_from_event(mailbox: str, event: dict[str, Any]) -> Meeting:
    """A :class:`Meeting` from a Graph ``event`` (a single instance or a series master).

    Raises MeetingValueError when the event cannot be represented.
    """
    start, end = parse_date_time(event.get("start")), parse_date_time(event.get("end"))
    pattern = event.get("recurrence")
    zone_hint = (pattern or {}).get("range", {}).get("recurrenceTimeZone")
    start_tz = iana_zone(event.get("originalStartTimeZone")) or iana_zone(zone_hint) or "UTC"
    end_tz = iana_zone(event.get("originalEndTimeZone")) or start_tz
    attendees = []
    for entry in event.get("attendees") or ():
        address = _address(entry)
        if address.count("@") == 1:
            attendees.append(Attendee(address, _ROLES.get(str(entry.get("type")), "required")))
    body = event.get("body") or {}
    location = event.get("location") or {}
    return Meeting(
        mailbox=mailbox,
        meeting_id=str(event["id"]),
        version=str(event.get("changeKey") or event.get("@odata.etag") or ""),
        organizer=_address(event.get("organizer")) or mailbox,
        subject=str(event.get("subject") or ""),
        start=start,
        end=end,
        start_tz=start_tz,
        end_tz=end_tz,
        body=str(body.get("content") or ""),
        body_type="HTML" if str(body.get("contentType")).lower() == "html" else "Text",
        location=str(location.get("displayName") or ""),
        attendees=tuple(attendees),
        recurrence=recurrence(pattern),
        uid=str(event.get("iCalUId") or ""),
    )


def out_of_office_from(setting: dict[str, Any], at: dt.datetime) -> OutOfOffice:
    """The model's OutOfOffice for an ``automaticRepliesSetting`` at time ``at``."""
    status = setting.get("status")
    reply = str(setting.get("internalReplyMessage") or "")
    if status == "alwaysEnabled":
        return OutOfOffice("enabled", True, reply)
    if status == "scheduled":
        start = parse_date_time(setting.get("scheduledStartDateTime"))
        end = parse_date_time(setting.get("scheduledEndDateTime"))
        return OutOfOffice("scheduled", start <= at < end, reply, start, end)
    return OutOfOffice("disabled", False, reply)
