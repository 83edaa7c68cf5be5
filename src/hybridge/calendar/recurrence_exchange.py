"""Exchange's six recurrence patterns as :class:`~hybridge.calendar.recurrence.Recurrence`.

EWS (``DailyRecurrence`` ... ``RelativeYearlyRecurrence``) and Graph (``daily`` ...
``relativeYearly``) carry the same patterns; both backends map through
:func:`exchange_recurrence` so they give the same rule for the same series:

==================  =========================================================================
pattern             rule
==================  =========================================================================
daily               ``FREQ=DAILY;INTERVAL=n``
weekly              ``FREQ=WEEKLY;INTERVAL=n;BYDAY=..`` (+ ``WKST`` when it changes the weeks)
absoluteMonthly     ``FREQ=MONTHLY;BYMONTHDAY=d``; for d > 28 ``BYMONTHDAY=28,..,d;BYSETPOS=-1``
relativeMonthly     ``FREQ=MONTHLY;BYDAY=..;BYSETPOS=k`` (first..fourth = 1..4, last = -1)
absoluteYearly      ``FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=d`` (29 February: ``28,29;BYSETPOS=-1``)
relativeYearly      ``FREQ=YEARLY;BYMONTH=m;BYDAY=..;BYSETPOS=k``
==================  =========================================================================

Exchange puts a monthly "day 31" (or a yearly 29 February) on the month's last day when
the month is shorter, where RFC 5545's plain BYMONTHDAY would skip that month; several
days with an index count the n-th of *any* of them ("the second weekend day"), which is
BYSETPOS.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hybridge.calendar.recurrence import (
    WEEKDAYS,
    Frequency,
    ModifiedOccurrence,
    Recurrence,
    RecurrenceError,
)

PATTERNS = (
    "daily",
    "weekly",
    "absoluteMonthly",
    "relativeMonthly",
    "absoluteYearly",
    "relativeYearly",
)


def weeks_agree(interval: int, days: tuple[str, ...], first_day_of_week: str) -> bool:
    """True when grouping ``days`` into weeks from ``first_day_of_week`` gives the same
    weeks as grouping them from Monday (RFC 5545's default WKST).

    Only an every-n-weeks rule (n > 1) on several days notices: days from the week start
    to Sunday share a week with the *following* Monday under that week start and with the
    *preceding* one under Monday.
    """
    if interval == 1 or first_day_of_week == "MO" or len(days) < 2:
        return True
    start = WEEKDAYS.index(first_day_of_week)
    late = {d for d in days if WEEKDAYS.index(d) >= start}
    return not late or late == set(days)


def _month_day(day: int, shortest: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if day > shortest:
        # Shorter months get their last day (Exchange), not nothing (RFC 5545).
        return tuple(range(shortest, day + 1)), (-1,)
    return (day,), ()


def exchange_recurrence(
    pattern: str,
    *,
    interval: int = 1,
    days: tuple[str, ...] = (),
    day_of_month: int | None = None,
    month: int | None = None,
    set_position: int = 1,
    first_day_of_week: str = "SU",
    count: int | None = None,
    until: dt.date | None = None,
    exdates: tuple[dt.datetime, ...] = (),
    modified: tuple[ModifiedOccurrence, ...] = (),
) -> Recurrence:
    """The :class:`Recurrence` of an Exchange pattern (see the module's table).

    ``days`` are RFC 5545 codes, ``set_position`` the relative patterns' index (1..4, -1
    for last), ``until`` the range's end date. Raises RecurrenceError for a pattern
    without what it needs (a weekly rule without days, a monthly one without its day).
    """

    def rule(frequency: Frequency, **parts: Any) -> Recurrence:
        return Recurrence(
            frequency,
            interval,
            count=count,
            until=until,
            exdates=exdates,
            modified=modified,
            **parts,
        )

    if pattern == "daily":
        return rule("DAILY")
    if pattern == "weekly":
        if not days:
            raise RecurrenceError("a weekly pattern needs at least one day", field="by_day")
        agree = weeks_agree(interval, tuple(days), first_day_of_week)
        return rule("WEEKLY", by_day=days, week_start="MO" if agree else first_day_of_week)
    if pattern in ("absoluteMonthly", "absoluteYearly") and (
        day_of_month is None or not 1 <= day_of_month <= 31
    ):
        raise RecurrenceError(
            f"{pattern} day of month {day_of_month!r} must be 1..31", field="by_month_day"
        )
    if pattern in ("relativeMonthly", "relativeYearly") and not days:
        raise RecurrenceError(f"a {pattern} pattern needs at least one day", field="by_day")
    if pattern in ("absoluteYearly", "relativeYearly") and (month is None or not 1 <= month <= 12):
        raise RecurrenceError(f"{pattern} month {month!r} must be 1..12", field="by_month")
    if pattern == "absoluteMonthly":
        month_days, set_pos = _month_day(day_of_month or 1, 28)
        return rule("MONTHLY", by_month_day=month_days, by_set_pos=set_pos)
    if pattern == "relativeMonthly":
        return rule("MONTHLY", by_day=days, by_set_pos=(set_position,))
    if pattern == "absoluteYearly":
        # Only 29 February is longer than its month can be (30 February is refused).
        month_days, set_pos = _month_day(day_of_month or 1, 28 if month == 2 else 31)
        return rule("YEARLY", by_month=(month,), by_month_day=month_days, by_set_pos=set_pos)
    if pattern == "relativeYearly":
        return rule("YEARLY", by_day=days, by_month=(month,), by_set_pos=(set_position,))
    raise RecurrenceError(f"pattern {pattern!r} must be one of {PATTERNS}", field="frequency")
