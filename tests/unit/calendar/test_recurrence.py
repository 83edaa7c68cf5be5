"""The model's recurrence: validation (each refusal names its field), expansion against
dateutil on the tricky cases (the 31st, 29 February, the last weekday, DST gaps and
overlaps), exceptions (deleted and moved occurrences), the expansion's bound, and the
plain-English description the cloud shows."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridge.calendar.model import Meeting, ModifiedOccurrence, Recurrence
from hybridge.calendar.recurrence import RecurrenceError
from hybridge.calendar.recurrence_expand import expand_first
from hybridge.calendar.recurrence_text import describe

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _meeting(start: dt.datetime, rule: Recurrence | None, tz: str = "Europe/Berlin") -> Meeting:
    return Meeting(
        mailbox="a@contoso.test",
        meeting_id="m1",
        version="v1",
        organizer="a@contoso.test",
        subject="Series",
        start=start,
        end=start + dt.timedelta(hours=1),
        start_tz=tz,
        end_tz=tz,
        recurrence=rule,
    )


def _dateutil(rrule: str, local_start: dt.datetime, tz: ZoneInfo, n: int) -> list[dt.datetime]:
    """dateutil on the wall clock, then the zone attached (RFC 5545 §3.3.10)."""
    naive = itertools.islice(rrulestr(f"RRULE:{rrule}", dtstart=local_start), n)
    return [
        dt.datetime.fromtimestamp(d.replace(tzinfo=tz).timestamp(), tz)  # type: ignore[union-attr]
        for d in naive
    ]


CASES = [
    pytest.param(
        Recurrence("DAILY", 3, count=10),
        dt.datetime(2027, 3, 20, 9),
        "FREQ=DAILY;INTERVAL=3;COUNT=10",
        id="every-3-days-across-dst",
    ),
    pytest.param(
        Recurrence("MONTHLY", by_month_day=(31,)),
        dt.datetime(2027, 1, 31, 9),
        "FREQ=MONTHLY;BYMONTHDAY=31",
        id="the-31st-skips-short-months",
    ),
    pytest.param(
        Recurrence("MONTHLY", by_month_day=(28, 29, 30, 31), by_set_pos=(-1,)),
        dt.datetime(2027, 1, 31, 9),
        "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1",
        id="day-31-or-the-last-day",
    ),
    pytest.param(
        Recurrence("MONTHLY", by_month_day=(-1,), count=14),
        dt.datetime(2027, 1, 31, 9),
        "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=14",
        id="last-day-of-month",
    ),
    pytest.param(
        Recurrence("YEARLY", by_month=(2,), by_month_day=(29,)),
        dt.datetime(2028, 2, 29, 9),
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        id="leap-day-only",
    ),
    pytest.param(
        Recurrence("YEARLY", by_month=(2,), by_month_day=(28, 29), by_set_pos=(-1,)),
        dt.datetime(2028, 2, 29, 9),
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
        id="leap-day-or-28-february",
    ),
    pytest.param(
        Recurrence("MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,)),
        dt.datetime(2027, 1, 29, 17),
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        id="last-weekday",
    ),
    pytest.param(
        Recurrence("MONTHLY", 2, ("2TH", "-1FR"), until=dt.date(2028, 6, 30)),
        dt.datetime(2027, 1, 14, 9),
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=2TH,-1FR;UNTIL=20280630T235959",
        id="ordinal-days",
    ),
    pytest.param(
        Recurrence("WEEKLY", 2, ("SU", "MO"), week_start="SU"),
        dt.datetime(2027, 1, 3, 9),
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU",
        id="week-start-sunday",
    ),
    pytest.param(
        Recurrence("YEARLY", by_day=("TH",), by_month=(11,), by_set_pos=(4,), count=5),
        dt.datetime(2027, 11, 25, 12),
        "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4;COUNT=5",
        id="thanksgiving",
    ),
    pytest.param(
        Recurrence("DAILY"),
        dt.datetime(2027, 3, 26, 2, 30),
        "FREQ=DAILY",
        id="a-time-in-the-spring-gap",
    ),
    pytest.param(
        Recurrence("DAILY"),
        dt.datetime(2027, 10, 29, 2, 30),
        "FREQ=DAILY",
        id="a-time-in-the-autumn-overlap",
    ),
]


@pytest.mark.parametrize(("rule", "local_start", "rrule"), CASES)
def test_expansion_is_dateutils_on_the_wall_clock(
    rule: Recurrence, local_start: dt.datetime, rrule: str
) -> None:
    meeting = _meeting(local_start.replace(tzinfo=BERLIN), rule)
    # 20 leap days span 80 years, inside the expansion's 100-year horizon.
    expected = _dateutil(rrule, local_start, BERLIN, 20)
    assert meeting.occurrence_starts(20) == expected
    assert rule.rrule.split(";UNTIL=")[0] == rrule.split(";UNTIL=")[0]


def test_wall_clock_time_is_kept_and_the_offset_follows_dst() -> None:
    start = dt.datetime(2027, 3, 26, 10, tzinfo=BERLIN)
    starts = _meeting(start, Recurrence("DAILY", count=4)).occurrence_starts(10)
    assert [s.hour for s in starts] == [10, 10, 10, 10]
    assert [s.utcoffset() for s in starts] == [dt.timedelta(hours=h) for h in (1, 1, 2, 2)]
    # 02:30 does not exist on 28 March: the offset from before the gap (RFC 5545 §3.3.5).
    gap = _meeting(dt.datetime(2027, 3, 27, 2, 30, tzinfo=BERLIN), Recurrence("DAILY"))
    assert gap.occurrence_starts(2)[1] == dt.datetime(2027, 3, 28, 1, 30, tzinfo=dt.UTC)


def test_the_interval_of_a_daily_rule_counts() -> None:
    start = dt.datetime(2027, 1, 4, 9, tzinfo=NEW_YORK)
    starts = _meeting(start, Recurrence("DAILY", 3, count=3), "America/New_York")
    assert [s.day for s in starts.occurrence_starts(10)] == [4, 7, 10]


def test_deleted_and_moved_occurrences() -> None:
    start = dt.datetime(2027, 1, 29, 17, tzinfo=BERLIN)
    moved = ModifiedOccurrence(
        dt.datetime(2027, 4, 30, 17, tzinfo=BERLIN),
        dt.datetime(2027, 4, 1, 9, tzinfo=BERLIN),
        dt.datetime(2027, 4, 1, 10, tzinfo=BERLIN),
    )
    rule = Recurrence(
        "MONTHLY",
        by_day=("MO", "TU", "WE", "TH", "FR"),
        by_set_pos=(-1,),
        count=6,
        # The same instant in another zone is the same occurrence.
        exdates=(dt.datetime(2027, 3, 31, 15, tzinfo=dt.UTC),),
        modified=(moved,),
    )
    starts = _meeting(start, rule).occurrence_starts(10)
    assert [(s.month, s.day, s.hour) for s in starts] == [
        (1, 29, 17),
        (2, 26, 17),
        (4, 1, 9),  # April's moved to 1 April, before where March's would have been? no: after
        (5, 31, 17),
        (6, 30, 17),
    ]
    # Bounded by time: only the occurrences before it.
    before = dt.datetime(2027, 4, 1, 9, tzinfo=BERLIN)
    assert len(_meeting(start, rule).occurrence_starts(10, before)) == 2


def test_a_rule_that_never_matches_is_refused_or_ends_quickly() -> None:
    # 31 February: dateutil alone would scan to the year 9999 (about half a minute).
    with pytest.raises(
        RecurrenceError, match=r"by_month_day \[30, 31\] never falls in months \[2\]"
    ):
        Recurrence("YEARLY", by_month=(2,), by_month_day=(30, 31))
    with pytest.raises(RecurrenceError, match="by_set_pos 3 is beyond the 2 days"):
        Recurrence("MONTHLY", by_month_day=(1, 2), by_set_pos=(3,))
    # Every 12 months from January never reaches March: nothing, at once.
    never = Recurrence("MONTHLY", 12, by_month=(3,), by_month_day=(1,))
    meeting = _meeting(dt.datetime(2027, 1, 1, 9, tzinfo=BERLIN), never)
    began = time.monotonic()
    assert meeting.occurrence_starts(5) == []
    assert time.monotonic() - began < 1
    # Without a bound, the expansion stops 100 years after the start.
    yearly = _meeting(dt.datetime(2027, 1, 1, 9, tzinfo=BERLIN), Recurrence("YEARLY"))
    assert len(yearly.occurrence_starts(500)) == 101


def test_a_meeting_without_a_rule_is_its_start() -> None:
    start = dt.datetime(2027, 1, 4, 9, tzinfo=BERLIN)
    assert _meeting(start, None).occurrence_starts(3) == [start]
    assert _meeting(start, None).occurrence_starts(3, start) == []
    assert expand_first(Recurrence("DAILY"), start, BERLIN, 0) == []


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"frequency": "HOURLY"}, "frequency", "frequency 'HOURLY' must be one of"),
        ({"interval": 0}, "interval", "interval 0 must be 1..999"),
        ({"interval": True}, "interval", "interval True must be 1..999"),
        ({"by_day": ("XX",)}, "by_day", "by_day 'XX' must be an RFC 5545 weekday code"),
        ({"by_day": ("2MO",)}, "by_day", "'2MO' has an ordinal, allowed only with MONTHLY"),
        ({"frequency": "MONTHLY", "by_day": ("6MO",)}, "by_day", "a monthly ordinal must be"),
        ({"frequency": "YEARLY", "by_day": ("54MO",)}, "by_day", "the ordinal must be ±1..53"),
        ({"count": 0}, "count", "count 0 must be 1..100000"),
        ({"count": 3, "until": dt.date(2027, 1, 1)}, "until", "cannot both be set"),
        ({"until": "2027-01-01"}, "until", "until '2027-01-01' must be a date"),
        ({"by_month_day": (3,)}, "by_month_day", "by_month_day is not carried with WEEKLY"),
        ({"frequency": "DAILY", "by_month": (3,)}, "by_month", "by_month is not carried with"),
        (
            {"frequency": "MONTHLY", "by_day": ("FR",), "by_month_day": (13,)},
            "by_day",
            "by_day and by_month_day together are not carried",
        ),
        (
            {"frequency": "MONTHLY", "by_day": ("2FR",), "by_set_pos": (1,)},
            "by_set_pos",
            "by_set_pos with an ordinal by_day is not carried",
        ),
        (
            {"frequency": "YEARLY", "by_day": ("6FR",), "by_month": (3,)},
            "by_day",
            "an ordinal within a month must be ±1..5",
        ),
        ({"frequency": "MONTHLY", "by_month_day": (0,)}, "by_month_day", "0 must be integers"),
        ({"frequency": "MONTHLY", "by_month_day": (32,)}, "by_month_day", "32 must be"),
        ({"frequency": "YEARLY", "by_month": (13,)}, "by_month", "by_month 13 must be integers"),
        ({"frequency": "YEARLY", "by_month": (-1,)}, "by_month", "by_month -1 must be integers"),
        ({"frequency": "YEARLY", "by_set_pos": (1,)}, "by_set_pos", "needs by_day or by_month_"),
        ({"frequency": "MONTHLY", "by_day": ("MO",), "by_set_pos": (0,)}, "by_set_pos", "0 must"),
        ({"week_start": "XX"}, "week_start", "week_start 'XX' must be one of"),
        ({"exdates": (dt.datetime(2027, 1, 1),)}, "exdates", "must be an aware datetime"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(
    kwargs: dict[str, object], field: str, message: str
) -> None:
    values: dict[str, object] = {"frequency": "WEEKLY", **kwargs}
    with pytest.raises(RecurrenceError, match=message) as caught:
        Recurrence(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_invalid_exceptions_are_refused() -> None:
    when = dt.datetime(2027, 1, 4, 9, tzinfo=BERLIN)
    with pytest.raises(RecurrenceError, match="is before start") as caught:
        ModifiedOccurrence(when, when, when - dt.timedelta(hours=1))
    assert caught.value.field == "end"
    with pytest.raises(RecurrenceError, match=r"original_start .* must be an aware datetime"):
        ModifiedOccurrence(when.replace(tzinfo=None), when, when)
    moved = ModifiedOccurrence(when, when, when)
    with pytest.raises(RecurrenceError, match="both deleted and modified"):
        Recurrence("DAILY", exdates=(when,), modified=(moved,))
    with pytest.raises(RecurrenceError, match="share the original start"):
        Recurrence("DAILY", modified=(moved, ModifiedOccurrence(when, when, when)))


def test_values_are_canonical() -> None:
    rule = Recurrence("MONTHLY", by_day=("+2TH", "MO", "-1FR", "MO"))
    assert rule.by_day == ("MO", "2TH", "-1FR")
    assert rule == Recurrence("MONTHLY", by_day=("-1FR", "2TH", "MO"))
    assert Recurrence("MONTHLY", by_month_day=(15, 1, 15)).by_month_day == (1, 15)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (
            Recurrence("MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,)),
            "Monthly on the last weekday",
        ),
        (
            Recurrence("MONTHLY", by_month_day=(28, 29, 30, 31), by_set_pos=(-1,), count=8),
            "Monthly on day 31, or the month's last day, 8 times",
        ),
        (
            Recurrence("YEARLY", by_month=(2,), by_month_day=(28, 29), by_set_pos=(-1,)),
            "Yearly on 29 February, or 28 February in common years",
        ),
        (
            Recurrence("YEARLY", by_day=("TH",), by_month=(11,), by_set_pos=(4,)),
            "Yearly on the fourth Thursday of November",
        ),
        (
            Recurrence("MONTHLY", 2, ("SA", "SU"), by_set_pos=(2,)),
            "Every 2 months on the second weekend day",
        ),
        (
            Recurrence("WEEKLY", 2, ("SU", "MO"), week_start="SU", until=dt.date(2027, 6, 30)),
            "Every 2 weeks on Monday and Sunday (weeks start on Sunday), until 30 June 2027",
        ),
        (Recurrence("DAILY", 3, count=1), "Every 3 days, once"),
        (
            Recurrence("MONTHLY", by_day=("2TH", "-1FR")),
            "Monthly on the second Thursday and the last Friday",
        ),
        (
            Recurrence(
                "WEEKLY",
                by_day=("TU",),
                exdates=(dt.datetime(2027, 1, 5, 9, tzinfo=BERLIN),),
            ),
            "Weekly on Tuesday (1 occurrence cancelled)",
        ),
    ],
)
def test_description_reads_like_outlook(rule: Recurrence, text: str) -> None:
    assert describe(rule) == text


_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC")


@st.composite
def _rules(draw: st.DrawFn) -> Recurrence:
    frequency = draw(st.sampled_from(("DAILY", "WEEKLY", "MONTHLY", "YEARLY")))
    day = st.sampled_from(("MO", "TU", "WE", "TH", "FR", "SA", "SU"))
    parts: dict[str, object] = {}
    if frequency in ("DAILY", "WEEKLY"):
        parts["by_day"] = tuple(draw(st.lists(day, max_size=3)))
    else:
        shape = draw(st.sampled_from(("set", "ordinal", "month_day")))
        if frequency == "YEARLY":
            parts["by_month"] = (draw(st.integers(1, 12)),)
        if shape == "set":
            parts["by_day"] = tuple(draw(st.lists(day, min_size=1, max_size=5, unique=True)))
            parts["by_set_pos"] = (draw(st.sampled_from((1, 2, 3, 4, -1))),)
        elif shape == "ordinal":
            ordinal = draw(st.sampled_from((1, 2, 3, 4, -1, -2)))
            parts["by_day"] = (f"{ordinal}{draw(day)}",)
        else:
            last = draw(st.integers(28, 31))
            parts["by_month_day"] = tuple(range(28, last + 1))
            parts["by_set_pos"] = (-1,)
    return Recurrence(
        frequency,  # type: ignore[arg-type]
        draw(st.integers(1, 3)),
        count=draw(st.integers(1, 15)),
        week_start=draw(day),
        **parts,  # type: ignore[arg-type]
    )


@settings(max_examples=80, deadline=None)
@given(
    _rules(),
    st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2090, 1, 1)),
    st.sampled_from(_ZONES),
)
def test_any_rule_expands_as_dateutil_reads_its_rrule_text(
    rule: Recurrence, local_start: dt.datetime, zone_name: str
) -> None:
    # The structured rule handed to dateutil and dateutil's own parse of rule.rrule agree,
    # occurrence for occurrence (within the 100-year horizon).
    tz = ZoneInfo(zone_name)
    local_start = local_start.replace(microsecond=0)
    start = local_start.replace(tzinfo=tz)
    ours = expand_first(rule, start, tz, 20)
    limit = _in_zone_start(local_start, tz) + dt.timedelta(days=365 * 99)
    theirs = [d for d in _dateutil(rule.rrule, local_start, tz, 20) if d < limit]
    assert [d for d in ours if d < limit] == theirs


def _in_zone_start(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(local.replace(tzinfo=tz).timestamp(), tz)
