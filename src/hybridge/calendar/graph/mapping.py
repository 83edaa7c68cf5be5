"""Graph ``event`` JSON <-> :class:`~hybridge.calendar.model.Meeting`, time zones included.

Times: the backend asks Graph for every ``dateTimeTimeZone`` in UTC (``Prefer:
outlook.timezone="UTC"``), so ``start.dateTime`` is an unambiguous instant; the meeting's
*own* zone comes from ``originalStartTimeZone``, which Exchange stores as a Windows zone
name ("W. Europe Standard Time"), sometimes as an IANA name, or as ``tzone://Microsoft/Utc``.
Windows names are mapped to IANA with CLDR's windowsZones table as shipped in
``tzlocal.windows_tz`` (a dependency of exchangelib); writing that table by hand would
only make it go stale.

Recurrence: ``recurrence.py`` reads Graph's ``patternedRecurrence`` exactly and maps all
six patterns onto the model's rule. A malformed one is not dropped silently:
:func:`map_event` returns the meeting without a rule *and* the problem, for the backend to
flag. The master carries no exceptions: Graph delivers them as instances of their own.

Instances: an ``exception`` (a modified occurrence) is a meeting of its own, with its own
id, times, subject and body, and no rule; ``isCancelled`` (an attendee's copy of a
cancelled meeting or occurrence) is reported in :attr:`MappedEvent.cancelled`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from tzlocal.windows_tz import win_tz

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.graph.recurrence import (
    RecurrenceValueError,
    model_recurrence,
    parse_recurrence,
)
from hybridge.calendar.model import (
    Attendee,
    AttendeeRole,
    Meeting,
    OutOfOffice,
    Recurrence,
    canonical_zone,
    zone,
)

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


def recurrence(value: dict[str, Any] | None, zone_name: str = "UTC") -> Recurrence | None:
    """The model's Recurrence for a Graph ``patternedRecurrence`` (None: not recurring).

    Raises RecurrenceValueError for a malformed one (see ``recurrence.model_recurrence``).
    """
    if not value:
        return None
    return model_recurrence(parse_recurrence(value), zone_name)


@dataclass(frozen=True)
class MappedEvent:
    """A Graph event as a meeting, what of it the meeting could not carry, and whether
    Graph marks it cancelled (``isCancelled``)."""

    meeting: Meeting
    problems: tuple[str, ...] = ()
    cancelled: bool = False


def map_event(mailbox: str, event: dict[str, Any]) -> MappedEvent:
    """A :class:`MappedEvent` from a Graph ``event`` (single, series master or exception).

    A malformed recurrence leaves the meeting without a rule and is named in ``problems``
    (never a wrong rule, never silence), as is a zone whose DST rules are unknown. Raises
    MeetingValueError when the event itself cannot be represented (no start, end before
    start ...).
    """
    start, end = parse_date_time(event.get("start")), parse_date_time(event.get("end"))
    pattern = event.get("recurrence")
    span = (pattern or {}).get("range") if isinstance(pattern, dict) else None
    zone_hint = (span or {}).get("recurrenceTimeZone")
    start_tz = iana_zone(event.get("originalStartTimeZone")) or iana_zone(zone_hint) or "UTC"
    end_tz = iana_zone(event.get("originalEndTimeZone")) or start_tz
    problems: list[str] = []
    rule: Recurrence | None = None
    if pattern:
        named = [str(n) for n in (event.get("originalStartTimeZone"), zone_hint) if n]
        if named and all(iana_zone(n) is None for n in named):
            # A custom zone (tzone://Microsoft/Custom): its DST rules are not in the
            # event, so the series' wall-clock time can only be kept in UTC.
            problems.append(
                f"time zone {named[0]!r} is not a known zone: occurrences keep their UTC "
                "time across DST changes"
            )
        rule_zone = iana_zone(zone_hint)
        if rule_zone is not None and rule_zone != start_tz:
            # Exchange runs a series in one zone; two different ones cannot both hold.
            problems.append(
                f"recurrenceTimeZone {zone_hint!r} differs from the start's zone "
                f"{start_tz!r}: occurrences follow {start_tz!r}"
            )
        try:
            rule = recurrence(pattern, start_tz)
        except RecurrenceValueError as exc:
            problems.append(f"recurrence refused: {exc}")
    attendees = []
    for entry in event.get("attendees") or ():
        address = _address(entry)
        if address.count("@") == 1:
            attendees.append(Attendee(address, _ROLES.get(str(entry.get("type")), "required")))
    body = event.get("body") or {}
    location = event.get("location") or {}
    meeting = Meeting(
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
        recurrence=rule,
        uid=str(event.get("iCalUId") or ""),
    )
    return MappedEvent(meeting, tuple(problems), event.get("isCancelled") is True)


def meeting_from_event(mailbox: str, event: dict[str, Any]) -> Meeting:
    """The :class:`Meeting` of :func:`map_event` (its problems are the caller's to flag)."""
    return map_event(mailbox, event).meeting


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
