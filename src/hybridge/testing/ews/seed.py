"""Calendar item properties built from Python values, as a client would send them."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from hybridge.testing.ews.errors import StoreLookupError
from hybridge.testing.ews.soap import T, el, sub


def calendar_item_props(
    smtp: str,
    *,
    subject: str,
    start: dt.datetime,
    end: dt.datetime,
    timezone: str = "UTC",
    body: str = "",
    location: str = "",
    organizer: str | None = None,
    required_attendees: Iterable[str] = (),
    optional_attendees: Iterable[str] = (),
    recurrence_weekly_days: Iterable[str] = (),
) -> dict[str, ET.Element]:
    """The ``t:CalendarItem`` children for a meeting in mailbox ``smtp``.

    Raises StoreLookupError when ``start`` or ``end`` is naive.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise StoreLookupError("start and end must be timezone-aware datetimes")
    props: dict[str, ET.Element] = {}

    def prop(name: str, text: str | None = None, **attrs: str) -> ET.Element:
        elem = el(T, name, text, **attrs)
        props[name] = elem
        return elem

    prop("Subject", subject)
    prop("Body", body, BodyType="Text")
    prop("Start", start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    prop("End", end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    prop("Location", location)
    prop("StartTimeZone", None, Id=timezone, Name=timezone)
    prop("EndTimeZone", None, Id=timezone, Name=timezone)
    sub(sub(prop("Organizer"), T, "Mailbox"), T, "EmailAddress", organizer or smtp)
    for name, people in (
        ("RequiredAttendees", required_attendees),
        ("OptionalAttendees", optional_attendees),
    ):
        people = list(people)
        if people:
            container = prop(name)
            for address in people:
                mailbox = sub(sub(container, T, "Attendee"), T, "Mailbox")
                sub(mailbox, T, "EmailAddress", address)
    days = list(recurrence_weekly_days)
    if days:
        rec = prop("Recurrence")
        weekly = sub(rec, T, "WeeklyRecurrence")
        sub(weekly, T, "Interval", "1")
        sub(weekly, T, "DaysOfWeek", " ".join(days))
        no_end = sub(rec, T, "NoEndRecurrence")
        sub(no_end, T, "StartDate", start.date().isoformat())
    prop("IsAllDayEvent", "false")
    return props
