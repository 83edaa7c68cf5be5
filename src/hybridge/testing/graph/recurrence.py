"""The emulator's recurrence: Graph's six ``recurrencePattern`` types and three range types.

Expanded by hand, following the published resource documentation and Exchange's
behaviour, *not* through an RFC 5545 library: the backend maps Graph rules to RFC 5545
terms, and the tests compare that mapping with what this emulator produces, so the two
must not share an implementation. The behaviours that differ from a naive reading:

- ``absoluteMonthly`` day 29..31 (and ``absoluteYearly`` 29 February) falls on the last day
  of a shorter month (Outlook: "Some months have fewer than 31 days. For these months, the
  occurrence will fall on the last day of the month.");
- a relative pattern with several ``daysOfWeek`` counts the n-th of *any* of those days in
  the month (recurrencePattern.index: "counted from the first instance in the month");
- a weekly pattern's weeks start on ``firstDayOfWeek`` (default ``sunday``), which decides
  the weeks an every-n-weeks series picks;
- occurrences keep the series' wall-clock time in its zone across DST changes.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

PatternType = Literal[
    "daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"
]
RangeType = Literal["endDate", "noEnd", "numbered"]
#: Graph's dayOfWeek values, Monday first (``datetime.weekday()`` order).
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Graph's weekIndex values.
WEEK_INDEX = ("first", "second", "third", "fourth", "last")


@dataclass(frozen=True)
class Pattern:
    """A Graph recurrence (``recurrencePattern`` and ``recurrenceRange`` in one).

    ``days`` are Graph dayOfWeek names; ``index`` is used by the relative patterns. The
    range ends after ``count`` occurrences, after ``end_date`` (inclusive, in the series'
    zone), or not at all.
    """

    type: PatternType
    interval: int = 1
    days: tuple[str, ...] = ()
    end_date: dt.date | None = None
    count: int | None = None
    day_of_month: int = 0
    month: int = 0
    index: str = "first"
    first_day_of_week: str = "sunday"

    def __post_init__(self) -> None:
        kinds = get_args(PatternType)
        if self.type not in kinds or self.interval < 1:
            raise ValueError(f"pattern {self.type!r}/{self.interval!r}: type in {kinds}, >= 1")
        bad = [d for d in (*self.days, self.first_day_of_week) if d not in DAYS]
        if bad:
            raise ValueError(f"days {bad!r} must be among {DAYS}")
        if self.type in ("relativeMonthly", "relativeYearly") and not self.days:
            raise ValueError(f"a {self.type} pattern needs days")
        if self.type.startswith("absolute") and not 1 <= self.day_of_month <= 31:
            raise ValueError(f"day_of_month {self.day_of_month!r} must be 1..31")
        if self.type.endswith("Yearly") and not 1 <= self.month <= 12:
            raise ValueError(f"month {self.month!r} must be 1..12")
        if self.index not in WEEK_INDEX:
            raise ValueError(f"index {self.index!r} must be one of {WEEK_INDEX}")
        if self.count is not None and self.end_date is not None:
            raise ValueError("a range ends by count or by end_date, not both")

    @property
    def range_type(self) -> RangeType:
        if self.count is not None:
            return "numbered"
        return "noEnd" if self.end_date is None else "endDate"

    def dates(self, first: dt.date) -> Iterator[dt.date]:
        """The series' dates from ``first`` (its start date) on, in order, without end
        (the range is the caller's: count, end date, view window)."""
        if self.type == "daily":
            day = first
            while True:
                yield day
                day += dt.timedelta(days=self.interval)
        if self.type == "weekly":
            start = DAYS.index(self.first_day_of_week)
            week = first - dt.timedelta(days=(first.weekday() - start) % 7)
            days = self.days or (DAYS[first.weekday()],)
            offsets = sorted((DAYS.index(d) - start) % 7 for d in days)
            while True:
                for offset in offsets:
                    day = week + dt.timedelta(days=offset)
                    if day >= first:
                        yield day
                week += dt.timedelta(days=7 * self.interval)
        yearly = self.type.endswith("Yearly")
        year, month = first.year, self.month if yearly else first.month
        step = 12 * self.interval if yearly else self.interval
        while True:
            found = self._in_month(year, month)
            if found is not None and found >= first:
                yield found
            month += step
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1

    def _in_month(self, year: int, month: int) -> dt.date | None:
        length = calendar.monthrange(year, month)[1]
        if self.type.startswith("absolute"):
            return dt.date(year, month, min(self.day_of_month, length))
        wanted = {DAYS.index(d) for d in self.days}
        matches = [
            dt.date(year, month, d)
            for d in range(1, length + 1)
            if dt.date(year, month, d).weekday() in wanted
        ]
        if self.index == "last":
            return matches[-1]
        position = WEEK_INDEX.index(self.index)
        return matches[position] if position < len(matches) else None
