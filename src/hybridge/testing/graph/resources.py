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
import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from hybridge.testing.graph.errors import GraphHttpError
from hybridge.testing.graph.store import DAYS, Event, Instance, occurrence_id

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
    """The ``patternedRecurrence``, shaped as Graph returns it: every pattern property
    present, the unused ones with zero values (``month: 0``, ``index: "first"``)."""
    p = event.pattern
    if p is None:
        return None
    local_start = event.start.astimezone(ZoneInfo(event.time_zone))
    kind = p.type
    return {
        "pattern": {
            "type": kind,
            "interval": p.interval,
            "month": p.month if kind.endswith("Yearly") else 0,
            "dayOfMonth": p.day_of_month if kind.startswith("absolute") else 0,
            "daysOfWeek": list(p.days) if kind in _WITH_DAYS else [],
            "firstDayOfWeek": p.first_day_of_week,
            "index": p.index if kind.startswith("relative") else "first",
        },
        "range": {
            "type": p.range_type,
            "startDate": local_start.date().isoformat(),
            "endDate": p.end_date.isoformat() if p.end_date is not None else "0001-01-01",
            "recurrenceTimeZone": windows_name(event.time_zone),
            "numberOfOccurrences": p.count or 0,
        },
    }


_WITH_DAYS = frozenset({"weekly", "relativeMonthly", "relativeYearly"})


def event_json(
    event: Event,
    *,
    tz: str,
    body_type: str | None = None,
    occurrence: dt.datetime | None = None,
    instance: Instance | None = None,
) -> dict[str, Any]:
    """The ``event`` resource; for ``occurrence`` (an original start) that occurrence of
    the series, for ``instance`` that exception (its own fields over the master's)."""
    duration = event.end - event.start
    start = occurrence if occurrence is not None else event.start
    content = event.body
    content_type = event.body_type
    if instance is not None:
        start, duration = instance.start, instance.end - instance.start
        content = instance.body if instance.body is not None else content
        content_type = instance.body_type or content_type
    if body_type == "text" and content_type == "html":
        from hybridge.core.meetings import html_to_text

        content, content_type = html_to_text(content), "text"
    out: dict[str, Any] = {
        "@odata.etag": event.etag if instance is None else instance.etag,
        "id": event.event_id,
        "createdDateTime": event.created.isoformat().replace("+00:00", "Z"),
        "lastModifiedDateTime": event.modified.isoformat().replace("+00:00", "Z"),
        "changeKey": event.change_key if instance is None else instance.change_key,
        "originalStartTimeZone": windows_name(event.time_zone),
        "originalEndTimeZone": windows_name(event.time_zone),
        "iCalUId": event.ical_uid,
        "subject": event.subject
        if instance is None or instance.subject is None
        else instance.subject,
        "bodyPreview": content[:255],
        "isOrganizer": event.organizer == event.mailbox,
        "isCancelled": instance is not None and instance.cancelled,
        "type": "singleInstance",
        "seriesMasterId": None,
        "body": {"contentType": content_type, "content": content},
        "start": date_time_time_zone(start, tz),
        "end": date_time_time_zone(start + duration, tz),
        "location": {
            "displayName": event.location
            if instance is None or instance.location is None
            else instance.location,
            "locationType": "default",
        },
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
        if instance is not None:
            out["type"] = "exception"
            out["id"] = instance.instance_id
            out["seriesMasterId"] = event.event_id
            out["originalStart"] = _utc_text(instance.original_start)
        elif occurrence is None:
            out["type"] = "seriesMaster"
            out["recurrence"] = _recurrence(event)
        else:
            out["type"] = "occurrence"
            out["id"] = occurrence_id(event.event_id, occurrence)
            out["seriesMasterId"] = event.event_id
            out["originalStart"] = _utc_text(occurrence)
    return out


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_delta_json(event: Event, instance: Instance, *, tz: str) -> dict[str, Any]:
    """An exception as ``calendarView/delta`` lists it: identity and times, like an
    occurrence (the client reads the rest with ``GET events/{id}``)."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": instance.etag,
        "id": instance.instance_id,
        "seriesMasterId": event.event_id,
        "type": "exception",
        "start": date_time_time_zone(instance.start, tz),
        "end": date_time_time_zone(instance.end, tz),
    }


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


def event_changes(payload: bytes) -> dict[str, Any]:
    """The store changes a PATCH ``event`` body asks for (``subject``, ``body``,
    ``location``); raises GraphHttpError 400 for anything else, as Graph does."""
    try:
        patch = json.loads(payload or b"{}")
    except ValueError:
        raise GraphHttpError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(patch, dict):
        raise GraphHttpError(400, "BadRequest", "The request payload must be a JSON object.")
    changes: dict[str, Any] = {}
    for name, value in patch.items():
        if name == "subject" and isinstance(value, str):
            changes["subject"] = value
        elif name == "body" and isinstance(value, dict):
            kind = str(value.get("contentType", "text")).lower()
            if kind not in ("text", "html") or not isinstance(value.get("content"), str):
                raise GraphHttpError(
                    400, "ErrorInvalidRequest", f"body contentType {kind!r} must be text or html"
                )
            changes["body"], changes["body_type"] = value["content"], kind
        elif name == "location" and isinstance(value, dict):
            changes["location"] = str(value.get("displayName", ""))
        else:
            raise GraphHttpError(
                400, "ErrorInvalidProperty", f"The property {name!r} cannot be set here."
            )
    return changes
