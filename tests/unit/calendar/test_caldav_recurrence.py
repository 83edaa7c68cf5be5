"""iCalendar series -> the model: RRULE parts, UNTIL as the last local day, EXDATE (one
line, several lines, dates), overridden instances (RECURRENCE-ID, moved or cancelled), and
rules the model cannot carry delivered without a rule and logged."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hybridge.calendar.caldav_backend import meeting_from_ical
from hybridge.calendar.caldav_recurrence import UnsupportedRuleError, recurrence_from_ical
from hybridge.calendar.model import ModifiedOccurrence, Recurrence

BERLIN = ZoneInfo("Europe/Berlin")


def _ics(master: str, *overrides: str) -> str:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:s1@test\r\nDTSTAMP:20270101T000000Z\r\n{body}END:VEVENT\r\n"
        for body in (master, *overrides)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n"


def _master(rule: str, extra: str = "") -> str:
    return (
        "DTSTART;TZID=Europe/Berlin:20270129T170000\r\n"
        "DTEND;TZID=Europe/Berlin:20270129T180000\r\n"
        f"SUMMARY:Close @webex\r\nORGANIZER:mailto:alice@contoso.test\r\n{rule}{extra}"
    )


def _rule(text: str) -> Recurrence | None:
    meeting = meeting_from_ical("alice@contoso.test", "/a/c/s1.ics", '"e1"', text)
    assert meeting is not None
    return meeting.recurrence


@pytest.mark.parametrize(
    ("rrule", "rule"),
    [
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6",
            Recurrence("MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,), count=6),
        ),
        (
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=+2TH,-1FR",
            Recurrence("MONTHLY", 2, ("2TH", "-1FR")),
        ),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
            Recurrence("YEARLY", by_month=(2,), by_month_day=(28, 29), by_set_pos=(-1,)),
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,MO;WKST=SU",
            Recurrence("WEEKLY", 2, ("MO", "SU"), week_start="SU"),
        ),
        # UNTIL 16:59:59 UTC is 17:59:59 in Berlin on 30 June: that day's 17:00 is in.
        (
            "FREQ=DAILY;UNTIL=20270630T155959Z",
            Recurrence("DAILY", until=dt.date(2027, 6, 30)),
        ),
        # ... and 14:59:59 UTC is before 17:00 Berlin: the series ends the day before.
        (
            "FREQ=DAILY;UNTIL=20270630T145959Z",
            Recurrence("DAILY", until=dt.date(2027, 6, 29)),
        ),
        ("FREQ=DAILY;UNTIL=20270630", Recurrence("DAILY", until=dt.date(2027, 6, 30))),
    ],
)
def test_rrule_parts_map(rrule: str, rule: Recurrence) -> None:
    assert _rule(_ics(_master(f"RRULE:{rrule}\r\n"))) == rule


def test_exdates_and_overridden_instances_are_the_series_exceptions() -> None:
    text = _ics(
        _master(
            "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6\r\n",
            "EXDATE;TZID=Europe/Berlin:20270331T170000\r\nEXDATE:20270531T150000Z\r\n",
        ),
        "RECURRENCE-ID;TZID=Europe/Berlin:20270430T170000\r\n"
        "DTSTART;TZID=Europe/Berlin:20270429T150000\r\n"
        "DTEND;TZID=Europe/Berlin:20270429T160000\r\nSUMMARY:Moved\r\n",
        "RECURRENCE-ID;TZID=Europe/Berlin:20270226T170000\r\n"
        "DTSTART;TZID=Europe/Berlin:20270226T170000\r\n"
        "DTEND;TZID=Europe/Berlin:20270226T180000\r\nSTATUS:CANCELLED\r\n",
    )
    rule = _rule(text)
    assert rule is not None
    assert rule.exdates == (
        dt.datetime(2027, 2, 26, 17, tzinfo=BERLIN),
        dt.datetime(2027, 3, 31, 17, tzinfo=BERLIN),
        dt.datetime(2027, 5, 31, 15, tzinfo=dt.UTC),
    )
    assert rule.modified == (
        ModifiedOccurrence(
            dt.datetime(2027, 4, 30, 17, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 15, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 16, tzinfo=BERLIN),
        ),
    )
    meeting = meeting_from_ical("alice@contoso.test", "/a/c/s1.ics", '"e1"', text)
    assert meeting is not None and meeting.subject == "Close @webex"  # the master, not "Moved"
    days = [(d.month, d.day) for d in meeting.occurrence_starts(10)]
    assert days == [(1, 29), (4, 29), (6, 30)]


def test_an_override_of_an_excluded_instance_is_excluded() -> None:
    text = _ics(
        _master("RRULE:FREQ=DAILY;COUNT=3\r\n", "EXDATE;VALUE=DATE:20270130\r\n"),
        "RECURRENCE-ID;TZID=Europe/Berlin:20270130T170000\r\n"
        "DTSTART;TZID=Europe/Berlin:20270130T190000\r\n"
        "DTEND;TZID=Europe/Berlin:20270130T200000\r\n",
    )
    rule = _rule(text)
    # A DATE exdate is that day at the series' time.
    assert rule is not None and rule.exdates == (dt.datetime(2027, 1, 30, 17, tzinfo=BERLIN),)
    assert rule.modified == ()


@pytest.mark.parametrize(
    ("rrule", "reason"),
    [
        ("RRULE:FREQ=HOURLY\r\n", "FREQ=HOURLY is not carried"),
        ("RRULE:FREQ=YEARLY;BYWEEKNO=20\r\n", "RRULE part BYWEEKNO is not carried"),
        ("RRULE:FREQ=DAILY\r\nRRULE:FREQ=WEEKLY\r\n", "2 RRULEs in one event"),
        ("RRULE:FREQ=DAILY\r\nRDATE:20270301T100000Z\r\n", "RDATE (extra dates) is not carried"),
    ],
)
def test_rules_the_model_cannot_carry_are_named_and_the_meeting_still_goes(
    rrule: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = _ics(_master(rrule))
    with caplog.at_level("WARNING", logger="hybridge.calendar.caldav_backend"):
        assert _rule(text) is None
    assert f"event s1@test delivered without its rule: {reason}" in caplog.text
    import icalendar

    master = next(iter(icalendar.Calendar.from_ical(text).walk("VEVENT")))
    with pytest.raises(UnsupportedRuleError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        recurrence_from_ical(
            master, [], dt.datetime(2027, 1, 29, 16, tzinfo=dt.UTC), "Europe/Berlin"
        )


def test_no_rrule_is_no_recurrence() -> None:
    assert _rule(_ics(_master(""))) is None
