"""Graph event JSON -> Meeting, time zones (Windows names), recurrence, automatic replies,
the persisted delta state and Retry-After: pure functions, no server."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
from typing import Any

import pytest

from hybridge.calendar.errors import InvalidSyncStateError, MeetingValueError
from hybridge.calendar.graph.backend import DeltaState
from hybridge.calendar.graph.client import retry_after_seconds
from hybridge.calendar.graph.mapping import (
    iana_zone,
    meeting_from_event,
    out_of_office_from,
    parse_date_time,
    recurrence,
)
from hybridge.calendar.model import Attendee, Recurrence


@pytest.mark.parametrize(
    ("graph", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("UTC", "UTC"),
        ("tzone://Microsoft/Utc", "UTC"),
        ("Europe/Paris", "Europe/Paris"),
        ("Etc/UTC", "UTC"),
    ],
)
def test_graph_zone_names_map_to_iana(graph: str, iana: str) -> None:
    assert iana_zone(graph) == iana


@pytest.mark.parametrize(
    "name", ["tzone://Microsoft/Custom", "Customized Time Zone", "Mars/Olympus", "", None]
)
def test_unknown_or_custom_zones_map_to_none(name: str | None) -> None:
    assert iana_zone(name) is None


def test_date_time_with_seven_fraction_digits_in_a_windows_zone() -> None:
    value = parse_date_time(
        {"dateTime": "2027-03-29T10:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    )
    assert value.utcoffset() == dt.timedelta(hours=2)  # CEST, after the DST change
    assert value.astimezone(dt.UTC) == dt.datetime(2027, 3, 29, 8, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"timeZone": "UTC"}, "has no dateTime"),
        ({"dateTime": "next tuesday", "timeZone": "UTC"}, "'next tuesday' is not ISO 8601"),
        (None, "has no dateTime"),
    ],
)
def test_bad_date_times_are_refused(value: Any, match: str) -> None:
    with pytest.raises(MeetingValueError, match=match):
        parse_date_time(value)


def _range(kind: str, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "startDate": "2027-03-22", "recurrenceTimeZone": "UTC", **kw}


def test_recurrence_patterns_map_to_the_model_subset() -> None:
    weekly = {
        "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["friday", "monday"]},
        "range": _range("numbered", numberOfOccurrences=6),
    }
    assert recurrence(weekly) == Recurrence("WEEKLY", 2, ("MO", "FR"), count=6)
    daily = {
        "pattern": {"type": "daily", "interval": 1},
        "range": _range("endDate", endDate="2027-04-30"),
    }
    assert recurrence(daily) == Recurrence("DAILY", 1, (), until=dt.date(2027, 4, 30))
    no_end = {"pattern": {"type": "weekly", "daysOfWeek": ["monday"]}, "range": _range("noEnd")}
    assert recurrence(no_end) == Recurrence("WEEKLY", 1, ("MO",))


def test_monthly_recurrence_is_carried_and_absent_is_none() -> None:
    monthly = {"pattern": {"type": "absoluteMonthly", "dayOfMonth": 3}, "range": _range("noEnd")}
    assert recurrence(monthly) == Recurrence("MONTHLY", by_month_day=(3,))
    assert recurrence(monthly).rrule == "FREQ=MONTHLY;BYMONTHDAY=3"  # type: ignore[union-attr]
    assert recurrence(None) is None


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "AAMkAD1",
        "changeKey": "ck1",
        "subject": "Board @webex",
        "body": {"contentType": "html", "content": "<p>hi</p>"},
        "start": {"dateTime": "2027-01-11T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2027-01-11T10:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time",
        "originalEndTimeZone": "W. Europe Standard Time",
        "organizer": {"emailAddress": {"name": "A", "address": "Alice@Contoso.test"}},
        "attendees": [
            {"type": "required", "emailAddress": {"address": "bob@contoso.test"}},
            {"type": "optional", "emailAddress": {"address": "carol@contoso.test"}},
            {"type": "resource", "emailAddress": {"address": "room1@contoso.test"}},
            {"type": "required", "emailAddress": {"address": "not-an-address"}},
        ],
        "location": {"displayName": "Room 1"},
        "iCalUId": "uid-1",
    }
    event.update(overrides)
    return event


def test_event_maps_to_a_meeting_in_its_own_zone() -> None:
    meeting = meeting_from_event("alice@contoso.test", _event())
    assert meeting.start_tz == "Europe/Berlin" and meeting.start.hour == 10
    assert meeting.start.astimezone(dt.UTC).hour == 9
    assert meeting.organizer == "alice@contoso.test" and meeting.organized_here
    assert meeting.body_type == "HTML" and meeting.version == "ck1"
    assert meeting.attendees == (
        Attendee("bob@contoso.test", "required"),
        Attendee("carol@contoso.test", "optional"),
        Attendee("room1@contoso.test", "resource"),
    )
    assert meeting.keyword is not None and meeting.location == "Room 1"


def test_custom_zone_falls_back_to_the_recurrence_zone_then_utc() -> None:
    series = _event(
        originalStartTimeZone="tzone://Microsoft/Custom",
        originalEndTimeZone="tzone://Microsoft/Custom",
        recurrence={
            "pattern": {"type": "weekly", "daysOfWeek": ["monday"]},
            "range": {**_range("noEnd"), "recurrenceTimeZone": "Pacific Standard Time"},
        },
    )
    assert meeting_from_event("alice@contoso.test", series).start_tz == "America/Los_Angeles"
    single = _event(originalStartTimeZone="Customized Time Zone", originalEndTimeZone=None)
    assert meeting_from_event("alice@contoso.test", single).start_tz == "UTC"


def test_event_ending_before_it_starts_is_refused() -> None:
    bad = _event(end={"dateTime": "2027-01-11T08:00:00.0000000", "timeZone": "UTC"})
    with pytest.raises(MeetingValueError, match="is before start"):
        meeting_from_event("alice@contoso.test", bad)


def test_automatic_replies_states() -> None:
    at = dt.datetime(2027, 1, 5, tzinfo=dt.UTC)
    window = {
        "scheduledStartDateTime": {"dateTime": "2027-01-01T00:00:00.0000000", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2027-01-10T00:00:00.0000000", "timeZone": "UTC"},
    }
    scheduled = out_of_office_from({"status": "scheduled", **window}, at)
    assert scheduled.state == "scheduled" and scheduled.active
    later = out_of_office_from({"status": "scheduled", **window}, at + dt.timedelta(days=9))
    assert not later.active
    assert out_of_office_from({"status": "alwaysEnabled"}, at).active
    assert out_of_office_from({"status": "disabled", **window}, at).state == "disabled"


def test_delta_state_round_trips_and_refuses_foreign_states() -> None:
    state = DeltaState(
        "https://g/v1.0/users/a/calendarView/delta?$deltatoken=x",
        dt.date(2027, 6, 1),
        (("m1", "ck1"),),
    )
    assert DeltaState.decode(state.encode(), "a@b.c") == state
    # A version-1 state (ids only) still reads: its masters are re-read once.
    v1 = json.dumps({"v": 1, "link": state.link, "window_end": "2027-06-01", "series": ["m1"]})
    assert DeltaState.decode(v1, "a@b.c").series == (("m1", ""),)
    for foreign in (
        "http://radicale.org/ns/sync/" + "0" * 64,
        json.dumps({"v": 3, "link": "x", "window_end": "2027-01-01", "series": []}),
        json.dumps({"v": 2, "link": "x", "window_end": "2027-01-01", "series": ["m1"]}),
        json.dumps({"v": 1, "link": "x", "window_end": "soon", "series": []}),
        "[]",
    ):
        with pytest.raises(InvalidSyncStateError, match="not a Graph delta state"):
            DeltaState.decode(foreign, "a@b.c")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("45") == 45
    assert retry_after_seconds("-3") == 0
    assert retry_after_seconds(None) == 30 and retry_after_seconds("soon") == 30
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after_seconds(in_a_minute) <= 61
