"""Graph ``patternedRecurrence`` -> exact RRULE text and the model's Recurrence: every
pattern and range type mapped onto the model, and what is refused as malformed."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from hybridge.calendar.graph.mapping import map_event
from hybridge.calendar.graph.recurrence import (
    GraphRecurrence,
    RecurrenceValueError,
    model_recurrence,
    parse_recurrence,
)
from hybridge.calendar.model import Recurrence
from hybridge.calendar.recurrence_expand import expand_first


def graph(pattern: dict[str, Any], span: dict[str, Any] | None = None) -> dict[str, Any]:
    """A patternedRecurrence as Graph returns it: unused fields present with zero values."""
    full = {
        "type": "daily",
        "interval": 1,
        "month": 0,
        "dayOfMonth": 0,
        "daysOfWeek": [],
        "firstDayOfWeek": "sunday",
        "index": "first",
        **pattern,
    }
    rng = {
        "type": "noEnd",
        "startDate": "2027-01-04",
        "endDate": "0001-01-01",
        "recurrenceTimeZone": "W. Europe Standard Time",
        "numberOfOccurrences": 0,
        **(span or {}),
    }
    return {"pattern": full, "range": rng}


@pytest.mark.parametrize(
    ("pattern", "span", "rrule", "model"),
    [
        (
            {"type": "daily", "interval": 3},
            {"type": "numbered", "numberOfOccurrences": 10},
            "FREQ=DAILY;INTERVAL=3;COUNT=10",
            Recurrence("DAILY", 3, (), count=10),
        ),
        (
            {"type": "weekly", "daysOfWeek": ["wednesday", "monday"], "firstDayOfWeek": "monday"},
            {"type": "endDate", "endDate": "2027-06-30"},
            # The last second of 30 June in Berlin (CEST, UTC+2), in UTC.
            "FREQ=WEEKLY;BYDAY=MO,WE;WKST=MO;UNTIL=20270630T215959Z",
            Recurrence("WEEKLY", 1, ("MO", "WE"), until=dt.date(2027, 6, 30)),
        ),
        (
            # Every two weeks, Wednesday and Friday, weeks from Sunday: the same weeks as
            # from Monday (neither day is Sunday), so the model says it exactly.
            {"type": "weekly", "interval": 2, "daysOfWeek": ["wednesday", "friday"]},
            {},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE,FR;WKST=SU",
            Recurrence("WEEKLY", 2, ("WE", "FR")),
        ),
        (
            {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday"]},
            {},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU;WKST=SU",
            Recurrence("WEEKLY", 2, ("SU",)),
        ),
    ],
)
def test_daily_and_weekly_map_occurrence_for_occurrence(
    pattern: dict[str, Any], span: dict[str, Any], rrule: str, model: Recurrence
) -> None:
    rule = parse_recurrence(graph(pattern, span))
    assert rule.rrule("Europe/Berlin") == rrule
    assert model_recurrence(rule, "Europe/Berlin") == model


@pytest.mark.parametrize(
    ("pattern", "span", "rrule"),
    [
        (
            {"type": "absoluteMonthly", "dayOfMonth": 15, "interval": 3},
            {},
            "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15",
        ),
        # Day 31 falls on the last day of shorter months (Exchange), not nowhere.
        (
            {"type": "absoluteMonthly", "dayOfMonth": 31},
            {"type": "numbered", "numberOfOccurrences": 8},
            "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1;COUNT=8",
        ),
        (
            {"type": "relativeMonthly", "daysOfWeek": ["thursday"], "index": "second"},
            {},
            "FREQ=MONTHLY;BYDAY=TH;BYSETPOS=2",
        ),
        (
            {"type": "relativeMonthly", "daysOfWeek": ["saturday", "sunday"], "index": "last"},
            {},
            "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=-1",
        ),
        (
            {"type": "absoluteYearly", "dayOfMonth": 15, "month": 3, "interval": 3},
            {},
            "FREQ=YEARLY;INTERVAL=3;BYMONTH=3;BYMONTHDAY=15",
        ),
        (
            {"type": "absoluteYearly", "dayOfMonth": 29, "month": 2},
            {},
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
        ),
        (
            {"type": "relativeYearly", "daysOfWeek": ["thursday"], "month": 11, "index": "fourth"},
            {"type": "endDate", "endDate": "2030-12-31"},
            "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4;UNTIL=20301231T225959Z",
        ),
        (
            # Weeks from Sunday: this Sunday goes with the *next* Monday, which a rule with
            # Monday weeks cannot say.
            {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "monday"]},
            {},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU",
        ),
    ],
)
def test_other_patterns_map_to_the_model_occurrence_for_occurrence(
    pattern: dict[str, Any], span: dict[str, Any], rrule: str
) -> None:
    rule = parse_recurrence(graph(pattern, span))
    assert rule.rrule("Europe/Berlin") == rrule
    model = model_recurrence(rule, "Europe/Berlin")
    # The model's rule is Graph's, except UNTIL (the model's is the local end date) and a
    # WKST that does not change the weeks.
    graph_parts = [p for p in rrule.split(";") if not p.startswith(("UNTIL=", "WKST="))]
    model_parts = [p for p in model.rrule.split(";") if not p.startswith(("UNTIL=", "WKST="))]
    assert model_parts == graph_parts
    assert model.until == rule.end_date
    start = dt.datetime(2027, 1, 4, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    expected = list(itertools.islice(rrulestr(f"RRULE:{rrule}", dtstart=start), 25))
    # dateutil on the Graph rule from a start that may not be an occurrence: compare the
    # occurrences from the first one on.
    first = expected[0] if expected else start
    assert expand_first(model, first, ZoneInfo("Europe/Berlin"), 25) == expected


def test_a_week_start_that_changes_the_weeks_is_carried() -> None:
    monthly = parse_recurrence(graph({"type": "relativeMonthly", "daysOfWeek": ["friday"]}))
    assert model_recurrence(monthly) == Recurrence("MONTHLY", by_day=("FR",), by_set_pos=(1,))
    weekly = parse_recurrence(
        graph(
            {
                "type": "weekly",
                "interval": 3,
                "daysOfWeek": ["saturday", "tuesday"],
                "firstDayOfWeek": "saturday",
            }
        )
    )
    assert model_recurrence(weekly) == Recurrence("WEEKLY", 3, ("TU", "SA"), week_start="SA")


@pytest.mark.parametrize(
    ("pattern", "span", "message"),
    [
        ({"type": "hourly"}, {}, "recurrence pattern type 'hourly' must be one of"),
        (
            {"type": "daily", "interval": 0},
            {},
            "recurrence pattern interval 0 must be an integer 1..999",
        ),
        (
            {"type": "daily", "interval": "2"},
            {},
            "recurrence pattern interval '2' must be an integer",
        ),
        ({"type": "weekly"}, {}, "recurrence pattern 'weekly' needs daysOfWeek"),
        (
            {"type": "weekly", "daysOfWeek": ["funday"]},
            {},
            "recurrence daysOfWeek 'funday' must be one of",
        ),
        (
            {"type": "absoluteMonthly", "dayOfMonth": 32},
            {},
            "recurrence pattern dayOfMonth 32 must be an integer 1..31",
        ),
        (
            {"type": "absoluteMonthly"},
            {},
            "recurrence pattern dayOfMonth 0 must be an integer 1..31",
        ),
        (
            {"type": "absoluteYearly", "dayOfMonth": 30, "month": 2},
            {},
            "dayOfMonth 30 does not exist in month 2 (at most 29)",
        ),
        (
            {"type": "relativeYearly", "daysOfWeek": ["monday"], "month": 13},
            {},
            "recurrence pattern month 13 must be an integer 1..12",
        ),
        (
            {"type": "relativeMonthly", "daysOfWeek": ["monday"], "index": "fifth"},
            {},
            "recurrence pattern index 'fifth' must be one of",
        ),
        ({"type": "daily"}, {"type": "forever"}, "recurrence range type 'forever' must be one of"),
        (
            {"type": "daily"},
            {"type": "numbered", "numberOfOccurrences": 0},
            "range numberOfOccurrences 0 must be an integer 1..100000",
        ),
        (
            {"type": "daily"},
            {"type": "endDate", "endDate": "2026-12-31"},
            "endDate '2026-12-31' must be a date on or after startDate 2027-01-04",
        ),
        (
            {"type": "daily"},
            {"type": "endDate", "endDate": "soon"},
            "recurrence range endDate 'soon' must be a date like",
        ),
        (
            {"type": "daily"},
            {"startDate": None},
            "recurrence range startDate None must be a date like",
        ),
    ],
)
def test_malformed_recurrences_are_refused_naming_the_field(
    pattern: dict[str, Any], span: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecurrenceValueError) as caught:
        parse_recurrence(graph(pattern, span))
    assert message in str(caught.value)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(RecurrenceValueError, match="needs both a pattern and a range"):
        parse_recurrence({"pattern": {"type": "daily"}})
    with pytest.raises(RecurrenceValueError, match="must be a patternedRecurrence object"):
        parse_recurrence([])  # type: ignore[arg-type]


def test_unused_fields_are_ignored_and_defaults_apply() -> None:
    rule = parse_recurrence(
        {
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "NoEnd", "startDate": "2027-01-04"},
        }
    )
    assert rule == GraphRecurrence(
        "relativeMonthly",
        1,
        ("MO",),
        first_day_of_week="SU",
        index="first",
        start_date=dt.date(2027, 1, 4),
    )


def _series(recurrence: dict[str, Any], zone: str = "W. Europe Standard Time") -> dict[str, Any]:
    return {
        "id": "AAMkS",
        "type": "seriesMaster",
        "subject": "Board",
        "start": {"dateTime": "2027-01-04T08:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2027-01-04T09:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": zone,
        "originalEndTimeZone": zone,
        "recurrence": recurrence,
    }


def test_a_monthly_series_is_carried_and_a_malformed_one_flagged() -> None:
    mapped = map_event("a@b.c", _series(graph({"type": "absoluteMonthly", "dayOfMonth": 4})))
    assert mapped.meeting.recurrence == Recurrence("MONTHLY", by_month_day=(4,))
    assert mapped.problems == () and mapped.meeting.meeting_id == "AAMkS"
    malformed = map_event("a@b.c", _series(graph({"type": "weekly"})))
    assert malformed.meeting.recurrence is None
    assert malformed.problems == (
        "recurrence refused: recurrence pattern 'weekly' needs daysOfWeek (at least one day)",
    )
    clean = map_event("a@b.c", _series(graph({"type": "daily"})))
    assert clean.problems == () and clean.meeting.recurrence == Recurrence("DAILY")


def test_a_series_in_a_custom_zone_is_flagged_for_dst() -> None:
    custom = _series(
        graph({"type": "daily"}, {"recurrenceTimeZone": "Customized Time Zone"}),
        zone="tzone://Microsoft/Custom",
    )
    mapped = map_event("a@b.c", custom)
    assert mapped.meeting.start_tz == "UTC" and mapped.meeting.recurrence == Recurrence("DAILY")
    assert mapped.problems == (
        "time zone 'tzone://Microsoft/Custom' is not a known zone: occurrences keep their UTC "
        "time across DST changes",
    )
    utc = _series(graph({"type": "daily"}, {"recurrenceTimeZone": "UTC"}), zone="UTC")
    assert map_event("a@b.c", utc).problems == ()


def test_cancelled_instances_are_marked() -> None:
    event = {**_series(graph({"type": "daily"})), "type": "exception", "recurrence": None}
    assert not map_event("a@b.c", event).cancelled
    assert map_event("a@b.c", {**event, "isCancelled": True}).cancelled


def test_a_recurrence_zone_other_than_the_start_zone_is_flagged() -> None:
    event = _series(
        graph({"type": "daily"}, {"recurrenceTimeZone": "Pacific Standard Time"}),
        zone="W. Europe Standard Time",
    )
    mapped = map_event("a@b.c", event)
    assert mapped.meeting.start_tz == "Europe/Berlin"
    assert mapped.problems == (
        "recurrenceTimeZone 'Pacific Standard Time' differs from the start's zone "
        "'Europe/Berlin': occurrences follow 'Europe/Berlin'",
    )
