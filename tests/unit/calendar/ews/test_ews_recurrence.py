"""EWS recurrence -> the model: every pattern type, boundary and DayOfWeek group, and a
master's modified and deleted occurrences, read from ``t:CalendarItem`` XML (types.xsd
``RecurrenceType``, ``ModifiedOccurrences``, ``DeletedOccurrences``) by exchangelib's own
parser (``CalendarItem.from_xml``) and by the connector's ``item_view``; the rule's
occurrences are checked against dateutil on the RRULE Exchange's pattern means."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from exchangelib.items import CalendarItem
from exchangelib.recurrence import DailyRegeneration, NoEndPattern
from exchangelib.recurrence import Recurrence as EwsRecurrence
from exchangelib.util import to_xml

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.ews.itemview import item_view
from hybridge.calendar.ews.recurrence import (
    UnsupportedPatternError,
    recurrence_from_ews,
    recurrence_from_item,
)
from hybridge.calendar.model import ModifiedOccurrence, Recurrence
from hybridge.calendar.recurrence_expand import expand_first

T = "http://schemas.microsoft.com/exchange/services/2006/types"
BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def _item(recurrence: str, extra: str = "") -> Any:
    text = (
        f'<t:Items xmlns:t="{T}"><t:CalendarItem>'
        '<t:ItemId Id="AAMk1" ChangeKey="CQ1"/><t:Subject>Series</t:Subject>'
        "<t:Start>2027-01-29T16:00:00Z</t:Start><t:End>2027-01-29T17:00:00Z</t:End>"
        f"<t:Recurrence>{recurrence}</t:Recurrence>{extra}"
        "</t:CalendarItem></t:Items>"
    )
    return to_xml(iter([text.encode()])).getroot()[0]


def _both(recurrence: str, extra: str = "") -> Recurrence | None:
    """The rule item_view gives, checked equal to the one from exchangelib's CalendarItem."""
    view = recurrence_from_item(item_view(_item(recurrence, extra), None))
    full = recurrence_from_item(CalendarItem.from_xml(_item(recurrence, extra), None))
    assert view == full
    return view


NUMBERED = (
    "<t:NumberedRecurrence><t:StartDate>2027-01-29</t:StartDate>"
    "<t:NumberOfOccurrences>6</t:NumberOfOccurrences></t:NumberedRecurrence>"
)
NO_END = "<t:NoEndRecurrence><t:StartDate>2027-01-04</t:StartDate></t:NoEndRecurrence>"
END_DATE = (
    "<t:EndDateRecurrence><t:StartDate>2027-01-04</t:StartDate>"
    "<t:EndDate>2027-12-31</t:EndDate></t:EndDateRecurrence>"
)


@pytest.mark.parametrize(
    ("pattern", "boundary", "rule", "rrule"),
    [
        (
            "<t:DailyRecurrence><t:Interval>3</t:Interval></t:DailyRecurrence>",
            NUMBERED,
            Recurrence("DAILY", 3, count=6),
            "FREQ=DAILY;INTERVAL=3;COUNT=6",
        ),
        (
            "<t:WeeklyRecurrence><t:Interval>2</t:Interval><t:DaysOfWeek>Sunday Monday"
            "</t:DaysOfWeek><t:FirstDayOfWeek>Sunday</t:FirstDayOfWeek></t:WeeklyRecurrence>",
            END_DATE,
            Recurrence("WEEKLY", 2, ("MO", "SU"), until=dt.date(2027, 12, 31), week_start="SU"),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU;UNTIL=20271231T235959",
        ),
        (
            # Weeks from Sunday, but no Sunday in the rule: the same weeks as from Monday.
            "<t:WeeklyRecurrence><t:Interval>2</t:Interval><t:DaysOfWeek>Tuesday Friday"
            "</t:DaysOfWeek><t:FirstDayOfWeek>Sunday</t:FirstDayOfWeek></t:WeeklyRecurrence>",
            NO_END,
            Recurrence("WEEKLY", 2, ("TU", "FR")),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,FR;WKST=SU",
        ),
        (
            "<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval>"
            "<t:DayOfMonth>31</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>",
            NUMBERED,
            Recurrence("MONTHLY", by_month_day=(28, 29, 30, 31), by_set_pos=(-1,), count=6),
            "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1;COUNT=6",
        ),
        (
            "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Weekday"
            "</t:DaysOfWeek><t:DayOfWeekIndex>Last</t:DayOfWeekIndex>"
            "</t:RelativeMonthlyRecurrence>",
            NUMBERED,
            Recurrence("MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,), count=6),
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6",
        ),
        (
            "<t:RelativeMonthlyRecurrence><t:Interval>2</t:Interval><t:DaysOfWeek>WeekendDay"
            "</t:DaysOfWeek><t:DayOfWeekIndex>Second</t:DayOfWeekIndex>"
            "</t:RelativeMonthlyRecurrence>",
            NO_END,
            Recurrence("MONTHLY", 2, ("SA", "SU"), by_set_pos=(2,)),
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=SA,SU;BYSETPOS=2",
        ),
        (
            "<t:AbsoluteYearlyRecurrence><t:DayOfMonth>29</t:DayOfMonth>"
            "<t:Month>February</t:Month></t:AbsoluteYearlyRecurrence>",
            NO_END,
            Recurrence("YEARLY", by_month=(2,), by_month_day=(28, 29), by_set_pos=(-1,)),
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
        ),
        (
            "<t:RelativeYearlyRecurrence><t:DaysOfWeek>Thursday</t:DaysOfWeek>"
            "<t:DayOfWeekIndex>Fourth</t:DayOfWeekIndex><t:Month>November</t:Month>"
            "</t:RelativeYearlyRecurrence>",
            END_DATE,
            Recurrence(
                "YEARLY",
                by_day=("TH",),
                by_month=(11,),
                by_set_pos=(4,),
                until=dt.date(2027, 12, 31),
            ),
            "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4;UNTIL=20271231T235959",
        ),
        (
            "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Day"
            "</t:DaysOfWeek><t:DayOfWeekIndex>First</t:DayOfWeekIndex>"
            "</t:RelativeMonthlyRecurrence>",
            NO_END,
            Recurrence(
                "MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR", "SA", "SU"), by_set_pos=(1,)
            ),
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYSETPOS=1",
        ),
    ],
)
def test_every_pattern_maps_occurrence_for_occurrence(
    pattern: str, boundary: str, rule: Recurrence, rrule: str
) -> None:
    assert _both(pattern + boundary) == rule
    # The series' start in Berlin, from the first occurrence of Exchange's rule.
    first = next(iter(rrulestr(f"RRULE:{rrule}", dtstart=dt.datetime(2027, 1, 4, 17))))
    start = first.replace(tzinfo=BERLIN)
    expected = [
        d.replace(tzinfo=BERLIN)
        for d in itertools.islice(rrulestr(f"RRULE:{rrule}", dtstart=first), 30)
    ]
    assert expand_first(rule, start, BERLIN, 30) == expected


def test_modified_and_deleted_occurrences_come_from_the_master() -> None:
    extra = (
        "<t:ModifiedOccurrences><t:Occurrence>"
        '<t:ItemId Id="AAMkOcc" ChangeKey="CQ2"/>'
        "<t:Start>2027-04-29T13:00:00Z</t:Start><t:End>2027-04-29T14:00:00Z</t:End>"
        "<t:OriginalStart>2027-04-30T15:00:00Z</t:OriginalStart>"
        "</t:Occurrence></t:ModifiedOccurrences>"
        "<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2027-03-31T15:00:00Z</t:Start>"
        "</t:DeletedOccurrence></t:DeletedOccurrences>"
    )
    pattern = (
        "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Weekday"
        "</t:DaysOfWeek><t:DayOfWeekIndex>Last</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>"
    )
    rule = _both(pattern + NUMBERED, extra)
    assert rule is not None
    assert rule.exdates == (dt.datetime(2027, 3, 31, 15, tzinfo=UTC),)
    assert rule.modified == (
        ModifiedOccurrence(
            dt.datetime(2027, 4, 30, 15, tzinfo=UTC),
            dt.datetime(2027, 4, 29, 13, tzinfo=UTC),
            dt.datetime(2027, 4, 29, 14, tzinfo=UTC),
        ),
    )
    start = dt.datetime(2027, 1, 29, 17, tzinfo=BERLIN)
    days = [(d.month, d.day, d.hour) for d in expand_first(rule, start, BERLIN, 10)]
    # Six by COUNT: January, February, (March deleted), April moved to the 29th 15:00,
    # May, June.
    assert days == [(1, 29, 17), (2, 26, 17), (4, 29, 15), (5, 31, 17), (6, 30, 17)]


def test_no_recurrence_is_none_and_task_patterns_are_refused() -> None:
    assert recurrence_from_ews(None) is None
    task = EwsRecurrence(pattern=DailyRegeneration(interval=2), boundary=NoEndPattern())
    with pytest.raises(UnsupportedPatternError, match="DailyRegeneration is not a calendar"):
        recurrence_from_ews(task)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            "<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval>"
            "<t:DayOfMonth>0</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>",
            "absoluteMonthly day of month 0 must be 1..31",
        ),
        (
            "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek></t:DaysOfWeek>"
            "</t:WeeklyRecurrence>",
            "a weekly pattern needs at least one day",
        ),
    ],
)
def test_patterns_the_schema_refuses_are_refused(pattern: str, message: str) -> None:
    parsed = CalendarItem.from_xml(_item(pattern + NO_END), None)
    with pytest.raises(MeetingValueError, match=message):
        recurrence_from_item(parsed)
