"""Graph v1.0 JSON for the emulator's resources: ``event``, ``automaticRepliesSetting``.

Shapes follow the published resource types: ``start``/``end`` are ``dateTimeTimeZone``
values (a wall-clock ``dateTime`` with seven fractional digits, and a ``timeZone``) in the
zone the client asked for with ``Prefer: outlook.timezone`` (UTC otherwise), while
``originalStartTimeZone`` keeps the organizer's zone as Exchange stores it: a Windows zone
name ("W. Europe Standard Time"). Windows <-> IANA names come from CLDR's windowsZones
table as shipped in ``tzlocal.windows_tz`` (a dependency of exchangelib).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from hybridge.testing.graph.store import DAYS, Event, occurrence_id

_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"?([^";,]+)"?', re.IGNORECASE)
_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
_PREFER_BODY = re.compile(r'outlook\.body-content-type\s*=\s*"?(text|html)"?', re.IGNORECASE)


def windows_name(iana: str) -> str:
    """The Windows zone name Exchange stores for ``iana`` (UTC stays ``UTC``)."""
    if iana in ("UTC", "Etc/UTC"):
        return "UTC"
    return tz_win.get(iana, iana)


def zone_of(name: str) -> ZoneInfo | None:
    """The zone a ``Prefer: outlook.timezone`` names (Windows or IANA), None if unknown."""
    iana = win_tz.get(name, name)
    try:
        return ZoneInfo("UTC" if iana in ("UTC", "Etc/UTC") else iana)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def prefer(headers: Any) -> tuple[str | None, int | None, str | None]:
    """(time zone, max page size, body content type) from the ``Prefer`` headers."""
    values = ", ".join(headers.get_all("Prefer") or [])
    tz, page, body = _PREFER_TZ.search(values), _PREFER_PAGE.search(values), None
    if match := _PREFER_BODY.search(values):
        body = match.group(1).lower()
    return (
        tz.group(1).strip() if tz else None,
        int(page.group(1)) if page else None,
        body,
    )


def date_time_time_zone(value: dt.datetime, zone_name: str) -> dict[str, str]:
    """A ``dateTimeTimeZone``: ``value`` as wall-clock time in ``zone_name``."""
    zone = zone_of(zone_name) or ZoneInfo("UTC")
    local = value.astimezone(zone).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}


def _address(address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": address.split("@")[0], "address": address}}


def _recurrence(event: Event) -> dict[str, Any] | None:
    p = event.pattern
    if p is None:
        return None
    local_start = event.start.astimezone(ZoneInfo(event.time_zone))
    if p.count is not None:
        kind, end, number = "numbered", "0001-01-01", p.count
    elif p.end_date is not None:
        kind, end, number = "endDate", p.end_date.isoformat(), 0
    else:
        kind, end, number = "noEnd", "0001-01-01", 0
    return {
        "pattern": {
            "type": p.type,
            "interval": p.interval,
            "month": 0,
            "dayOfMonth": 0,
            "daysOfWeek": list(p.days) if p.type == "weekly" else [],
            "firstDayOfWeek": "sunday",
            "index": "first",
        },
        "range": {
            "type": kind,
            "startDate": local_start.date().isoformat(),
            "endDate": end,
            "recurrenceTimeZone": windows_name(event.time_zone),
            "numberOfOccurrences": number,
        },
    }


def event_json(
    event: Event,
    *,
    tz: str,
    body_type: str | None = None,
    occurrence: dt.datetime | None = None,
) -> dict[str, Any]:
    """The ``event`` resource; for ``occurrence`` (an original start) the instance."""
    duration = event.end - event.start
    start = occurrence if occurrence is not None else event.start
    content = event.body
    content_type = event.body_type
    if body_type == "text" and event.body_type == "html":
        from hybridge.core.meetings import html_to_text

        content, content_type = html_to_text(event.body), "text"
    out: dict[str, Any] = {
        "@odata.etag": event.etag,
        "id": event.event_id,
        "createdDateTime": event.created.isoformat().replace("+00:00", "Z"),
        "lastModifiedDateTime": event.modified.isoformat().replace("+00:00", "Z"),
        "changeKey": event.change_key,
        "originalStartTimeZone": windows_name(event.time_zone),
        "originalEndTimeZone": windows_name(event.time_zone),
        "iCalUId": event.ical_uid,
        "subject": event.subject,
        "bodyPreview": content[:255],
        "isOrganizer": event.organizer == event.mailbox,
        "type": "singleInstance",
        "seriesMasterId": None,
        "body": {"contentType": content_type, "content": content},
        "start": date_time_time_zone(start, tz),
        "end": date_time_time_zone(start + duration, tz),
        "location": {"displayName": event.location, "locationType": "default"},
        "attendees": [
            {
                "type": kind,
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                **_address(address),
            }
            for address, kind in event.attendees
        ],
        "organizer": _address(event.organizer),
        "recurrence": None,
    }
    if event.pattern is not None:
        if occurrence is None:
            out["type"] = "seriesMaster"
            out["recurrence"] = _recurrence(event)
        else:
            out["type"] = "occurrence"
            out["id"] = occurrence_id(event.event_id, occurrence)
            out["seriesMasterId"] = event.event_id
    return out


def occurrence_delta_json(event: Event, occurrence: dt.datetime, *, tz: str) -> dict[str, Any]:
    """An occurrence as ``calendarView/delta`` lists it: only its identity and times.

    Graph returns the full event for single instances but, for occurrences, only these
    properties (microsoftgraph/microsoft-graph-docs issues 7632 and 22197): the client
    reads everything else from the series master.
    """
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": event.etag,
        "id": occurrence_id(event.event_id, occurrence),
        "seriesMasterId": event.event_id,
        "type": "occurrence",
        "start": date_time_time_zone(occurrence, tz),
        "end": date_time_time_zone(occurrence + (event.end - event.start), tz),
    }


def removed_json(item_id: str) -> dict[str, Any]:
    """A delta entry for an item gone from the view (deleted, or moved out of the window)."""
    return {"id": item_id, "@removed": {"reason": "deleted"}}


def weekday_names(codes: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 5545 weekday codes (``MO``) as Graph's ``dayOfWeek`` names (``monday``)."""
    index = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    return tuple(DAYS[index.index(c)] for c in codes)
