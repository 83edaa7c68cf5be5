"""Meeting values: validation, time zones, recurrence expansion across DST (pure)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.model import (
    Attendee,
    Change,
    Meeting,
    Recurrence,
    canonical_zone,
)

BERLIN = ZoneInfo("Europe/Berlin")


def meeting(**kw: object) -> Meeting:
    base: dict[str, object] = dict(
        mailbox="Alice@Contoso.test",
        meeting_id="m1",
        version="v1",
        organizer="ALICE@contoso.test",
        subject="Jour fixe @webex",
        start=dt.datetime(2027, 3, 22, 10, tzinfo=BERLIN),
        end=dt.datetime(2027, 3, 22, 11, tzinfo=BERLIN),
        start_tz="Europe/Berlin",
        end_tz="Europe/Berlin",
    )
    base.update(kw)
    return Meeting(**base)  # type: ignore[arg-type]


def test_meeting_normalises_addresses_and_zone() -> None:
    m = meeting()
    assert m.mailbox == "alice@contoso.test" and m.organized_here
    assert m.start.tzinfo == BERLIN and m.start.hour == 10
    assert m.keyword is not None and m.keyword.text == "@webex"
    assert not m.has_join_details


def test_meeting_given_in_utc_is_shown_in_its_zone() -> None:
    m = meeting(start=dt.datetime(2027, 3, 22, 9, tzinfo=dt.UTC))
    assert (m.start.hour, m.start.tzinfo) == (10, BERLIN)


@pytest.mark.parametrize("alias", ["UTC", "Etc/UTC", "GMT", "Etc/GMT"])
def test_utc_aliases_fold_into_utc(alias: str) -> None:
    assert canonical_zone(alias) == "UTC"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"start": dt.datetime(2027, 3, 22, 10)}, "must be aware datetimes"),
        ({"end": dt.datetime(2027, 3, 22, 9, tzinfo=BERLIN)}, "is before start"),
        ({"start_tz": "Mars/Olympus"}, "'Mars/Olympus' is not an IANA zone"),
        ({"meeting_id": ""}, "meeting_id must not be empty"),
        ({"body_type": "RTF"}, "body_type 'RTF' must be Text or HTML"),
    ],
)
def test_invalid_meetings_are_refused(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(MeetingValueError, match=reason):
        meeting(**changes)


def test_attendee_and_recurrence_validation() -> None:
    assert Attendee("Room1@Contoso.test", "resource").address == "room1@contoso.test"
    with pytest.raises(MeetingValueError, match="'bob' is not an address"):
        Attendee("bob")
    with pytest.raises(MeetingValueError, match="role 'chair' must be"):
        Attendee("b@c.d", "chair")  # type: ignore[arg-type]
    with pytest.raises(MeetingValueError, match=r"by_day 'XX' must be an RFC 5545 weekday code"):
        Recurrence("WEEKLY", by_day=("XX",))
    with pytest.raises(MeetingValueError, match="frequency 'HOURLY' must be"):
        Recurrence("HOURLY")  # type: ignore[arg-type]
    with pytest.raises(MeetingValueError, match="interval 0 must be"):
        Recurrence("DAILY", interval=0)


def test_rrule_text() -> None:
    rule = Recurrence("WEEKLY", 2, ("FR", "MO"), count=5)
    assert rule.rrule == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;COUNT=5"
    assert Recurrence("DAILY", until=dt.date(2027, 4, 1)).rrule == "FREQ=DAILY;UNTIL=20270401"


def test_weekly_series_keeps_wall_clock_across_spring_dst() -> None:
    # DST in the EU starts on the last Sunday of March: 28 March 2027.
    m = meeting(recurrence=Recurrence("WEEKLY", by_day=("MO",)))
    starts = m.occurrence_starts(3)
    assert [s.isoformat() for s in starts] == [
        "2027-03-22T10:00:00+01:00",
        "2027-03-29T10:00:00+02:00",
        "2027-04-05T10:00:00+02:00",
    ]


def test_weekly_series_across_autumn_dst_and_count() -> None:
    m = meeting(
        start=dt.datetime(2027, 10, 25, 10, tzinfo=BERLIN),
        end=dt.datetime(2027, 10, 25, 11, tzinfo=BERLIN),
        recurrence=Recurrence("WEEKLY", by_day=("MO", "WE"), count=3),
    )
    starts = m.occurrence_starts(10)
    # DST ends on the last Sunday of October (31 October 2027): CEST, CEST, then CET.
    assert [s.astimezone(dt.UTC).strftime("%d %H") for s in starts] == ["25 08", "27 08", "01 09"]
    assert [s.hour for s in starts] == [10, 10, 10]
    assert len(starts) == 3  # COUNT=3


def test_daily_series_until() -> None:
    m = meeting(recurrence=Recurrence("DAILY", until=dt.date(2027, 3, 24)))
    assert [s.day for s in m.occurrence_starts(10)] == [22, 23, 24]


def test_change_carries_a_meeting_only_for_an_upsert() -> None:
    m = meeting()
    assert Change("upsert", "m1", m).meeting is m
    with pytest.raises(MeetingValueError, match="an upsert carries the meeting"):
        Change("upsert", "m1")
    with pytest.raises(MeetingValueError, match="an upsert carries the meeting"):
        Change("delete", "m1", m)
