"""The recurrence on the wire: the first format (daily/weekly) still decodes and is still
sent when it says the rule; format 2 carries every rule part and the exceptions; each
refusal names its field."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hybridge.calendar import wire
from hybridge.calendar.model import Meeting, ModifiedOccurrence, Recurrence

BERLIN = ZoneInfo("Europe/Berlin")
START = dt.datetime(2027, 1, 29, 17, tzinfo=BERLIN)

#: A meeting exactly as a connector built before format 2 sent it (captured text).
OLD_PAYLOAD = (
    '{"mailbox":"alice@contoso.test","meeting_id":"AAMkAD=","version":"CQAAABYA",'
    '"uid":"040000008200E00074C5B7101A82E008","organizer":"alice@contoso.test",'
    '"subject":"Weekly @webex","start":"2026-03-23T10:00:00+01:00",'
    '"end":"2026-03-23T11:00:00+01:00","start_tz":"Europe/Berlin","end_tz":"Europe/Berlin",'
    '"body":"","body_type":"Text","location":"","attendees":[],'
    '"recurrence":{"frequency":"WEEKLY","interval":2,"by_day":["MO","WE"],"count":null,'
    '"until":"2026-12-31"}}'
)

LAST_WEEKDAY = Recurrence(
    "MONTHLY",
    by_day=("MO", "TU", "WE", "TH", "FR"),
    by_set_pos=(-1,),
    count=6,
    exdates=(dt.datetime(2027, 3, 31, 17, tzinfo=BERLIN),),
    modified=(
        ModifiedOccurrence(
            dt.datetime(2027, 4, 30, 17, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 15, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 16, tzinfo=BERLIN),
        ),
    ),
)


def _meeting(rule: Recurrence | None) -> Meeting:
    return Meeting(
        mailbox="alice@contoso.test",
        meeting_id="m1",
        version="v1",
        organizer="alice@contoso.test",
        subject="Close @webex",
        start=START,
        end=START + dt.timedelta(hours=1),
        start_tz="Europe/Berlin",
        end_tz="Europe/Berlin",
        recurrence=rule,
    )


def _doc(rule: Recurrence = LAST_WEEKDAY) -> dict[str, Any]:
    return wire.meeting_to_json(_meeting(rule))


def _refused(doc: dict[str, Any]) -> wire.WireFormatError:
    with pytest.raises(wire.WireFormatError) as caught:
        wire.meeting_from_json(doc)
    return caught.value


def test_an_old_payload_still_decodes() -> None:
    meeting = wire.meeting_from_bytes(OLD_PAYLOAD)
    assert meeting.recurrence == Recurrence("WEEKLY", 2, ("MO", "WE"), until=dt.date(2026, 12, 31))
    # ... and a rule the first format can say is still sent in it, byte for byte.
    assert wire.dumps(wire.meeting_to_json(meeting)).decode() == OLD_PAYLOAD


def test_format_2_round_trips_every_part_and_the_exceptions() -> None:
    doc = _doc()
    rec = doc["recurrence"]
    assert rec["format"] == 2
    assert rec["by_day"] == ["MO", "TU", "WE", "TH", "FR"] and rec["by_set_pos"] == [-1]
    assert rec["exdates"] == ["2027-03-31T17:00:00+02:00"]
    assert rec["modified"] == [
        {
            "original_start": "2027-04-30T17:00:00+02:00",
            "start": "2027-04-29T15:00:00+02:00",
            "end": "2027-04-29T16:00:00+02:00",
        }
    ]
    back = wire.meeting_from_bytes(wire.dumps(doc))
    assert back == _meeting(LAST_WEEKDAY)
    assert back.recurrence is not None and back.recurrence.rrule == LAST_WEEKDAY.rrule


@pytest.mark.parametrize(
    "rule",
    [
        Recurrence("YEARLY", by_month=(2,), by_month_day=(28, 29), by_set_pos=(-1,)),
        Recurrence("MONTHLY", 2, ("2TH", "-1FR")),
        Recurrence("WEEKLY", 2, ("SU", "MO"), week_start="SU"),
        Recurrence("DAILY", exdates=(START,)),
    ],
)
def test_rules_beyond_the_first_format_use_format_2(rule: Recurrence) -> None:
    doc = _doc(rule)
    assert doc["recurrence"]["format"] == 2
    assert wire.meeting_from_json(doc).recurrence == rule


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"format": 3}, "recurrence.format", "3 is not a known recurrence format"),
        ({"format": True}, "recurrence.format", "True is not a known recurrence format"),
        ({"by_set_pos": [0]}, "recurrence.by_set_pos", "by_set_pos 0 must be integers ±1..366"),
        ({"by_set_pos": "1"}, "recurrence.by_set_pos", "'1' must be a list of integers"),
        ({"by_month": [13]}, "recurrence.by_month", "by_month 13 must be integers 1..12"),
        ({"by_month_day": [32]}, "recurrence.by_month_day", "by_month_day 32 must be"),
        ({"by_day": ["9MO"]}, "recurrence.by_day", "'9MO': a monthly ordinal must be ±1..5"),
        ({"week_start": "XX"}, "recurrence.week_start", "week_start 'XX' must be one of"),
        ({"exdates": ["2027-03-31T17:00:00"]}, "recurrence.exdates[0]", "has no UTC offset"),
        ({"exdates": "x"}, "recurrence.exdates", "'x' must be a list"),
        ({"frequency": "HOURLY"}, "recurrence.frequency", "frequency 'HOURLY' must be one of"),
        ({"count": 5, "until": "2027-12-31"}, "recurrence.until", "cannot both be set"),
    ],
)
def test_bad_format_2_fields_are_named(change: dict[str, Any], field: str, message: str) -> None:
    doc = _doc()
    doc["recurrence"].update(change)
    err = _refused(doc)
    assert err.field == field
    assert message in str(err)


def test_bad_modified_occurrences_are_named() -> None:
    doc = _doc()
    doc["recurrence"]["modified"][0]["end"] = "2027-04-29T14:00:00+02:00"
    err = _refused(doc)
    assert err.field == "recurrence.modified[0].end" and "is before start" in str(err)
    doc = _doc()
    doc["recurrence"]["modified"][0]["moved"] = True
    assert _refused(doc).field == "recurrence.modified[0].moved"
    doc = _doc()
    del doc["recurrence"]["modified"][0]["original_start"]
    assert _refused(doc).field == "recurrence.modified[0].original_start"
    doc = _doc()
    doc["recurrence"]["exdates"] = [doc["recurrence"]["modified"][0]["original_start"]]
    err = _refused(doc)
    assert err.field == "recurrence.modified" and "both deleted and modified" in str(err)


def test_format_2_fields_without_format_are_refused_as_unknown() -> None:
    # The first format is exactly its five fields: a part it cannot say is not dropped.
    doc = _doc(Recurrence("WEEKLY", 1, ("MO",)))
    doc["recurrence"]["by_set_pos"] = [1]
    err = _refused(doc)
    assert err.field == "recurrence.by_set_pos" and "is not a known field" in str(err)
    doc = _doc()
    del doc["recurrence"]["week_start"]
    assert _refused(doc).field == "recurrence.week_start"


def test_too_many_exceptions_are_refused() -> None:
    doc = _doc()
    doc["recurrence"]["exdates"] = ["2027-03-31T17:00:00+02:00"] * 4001
    err = _refused(doc)
    assert isinstance(err, wire.WireTooLargeError) and err.field == "recurrence.exdates"
