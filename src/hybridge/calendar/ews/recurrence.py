"""An EWS series (exchangelib's recurrence classes) as the model's :class:`Recurrence`.

exchangelib parses ``t:Recurrence`` into a pattern (``DailyPattern`` ...
``RelativeYearlyPattern``) and a boundary (``NoEndPattern``, ``EndDatePattern``,
``NumberedPattern``), and a master's ``t:ModifiedOccurrences`` / ``t:DeletedOccurrences``
into ``Occurrence`` (start, end, original start) and ``DeletedOccurrence`` (start) lists.
:func:`recurrence_from_ews` maps them through ``calendar.recurrence_exchange`` — the same
table as Graph's, so both backends say the same rule for the same series:

- a relative pattern's ``DayOfWeek`` may be ``Day``, ``Weekday`` or ``WeekendDay``
  (types.xsd ``DayOfWeekType``): the n-th of any of those days, i.e. BYDAY with BYSETPOS;
  ``DayOfWeekIndex`` First..Fourth, Last is BYSETPOS 1..4, -1;
- a weekly pattern's ``FirstDayOfWeek`` becomes WKST when it changes the weeks (EWS omits
  it for old servers: Sunday, Outlook's default, as Graph documents);
- ``*Regeneration`` patterns belong to tasks, never to calendar items: refused by name.

Exchange keeps a series' deleted and modified occurrences on its master (SyncFolderItems
never lists occurrences as items), so they become ``exdates`` and ``modified``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NumberedPattern,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.model import WEEKDAYS, ModifiedOccurrence, Recurrence
from hybridge.calendar.recurrence_exchange import exchange_recurrence

#: types.xsd DayOfWeekType in exchangelib's order (1-based): seven days, then the groups.
_DAY_NAMES = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Day",
    "Weekday",
    "WeekendDay",
)
_DAY_GROUPS: dict[int, tuple[str, ...]] = {
    8: WEEKDAYS,
    9: WEEKDAYS[:5],
    10: WEEKDAYS[5:],
}
_WEEK_NAMES = ("First", "Second", "Third", "Fourth", "Last")
_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class UnsupportedPatternError(MeetingValueError):
    """An EWS recurrence pattern that calendar items do not have (task regeneration)."""


def _number(value: Any, names: tuple[str, ...], what: str) -> int:
    """exchangelib's enum value (1-based int, or its name) as the 1-based number."""
    if isinstance(value, str) and value in names:
        return names.index(value) + 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(names):
        return value
    raise MeetingValueError(f"EWS {what} {value!r} must be one of {list(names)}")


def _days(value: Any) -> tuple[str, ...]:
    number = _number(value, _DAY_NAMES, "DayOfWeek")
    return _DAY_GROUPS[number] if number in _DAY_GROUPS else (WEEKDAYS[number - 1],)


def _plain(value: Any) -> dt.datetime:
    """An EWSDateTime as a plain aware datetime (the model refuses library subclasses)."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise MeetingValueError(f"EWS occurrence time {value!r} must be an aware date-time")
    return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)


def _set_position(value: Any) -> int:
    number = _number(value, _WEEK_NAMES, "DayOfWeekIndex")
    return -1 if number == 5 else number


def recurrence_from_ews(value: Any, modified: Any = None, deleted: Any = None) -> Recurrence | None:
    """The model's Recurrence of an exchangelib ``Recurrence`` (None: not recurring) with
    the master's ``modified_occurrences`` and ``deleted_occurrences``.

    Raises UnsupportedPatternError for a task's regeneration pattern and MeetingValueError
    for a value EWS's schema does not allow.
    """
    if value is None:
        return None
    pattern, boundary = value.pattern, value.boundary
    kwargs: dict[str, Any] = {
        "interval": getattr(pattern, "interval", None) or 1,
        "count": boundary.number if isinstance(boundary, NumberedPattern) else None,
        "until": boundary.end if isinstance(boundary, EndDatePattern) else None,
        "exdates": tuple(_plain(d.start) for d in deleted or ()),
        "modified": tuple(
            ModifiedOccurrence(_plain(o.original_start), _plain(o.start), _plain(o.end))
            for o in modified or ()
        ),
    }
    if isinstance(pattern, DailyPattern):
        return exchange_recurrence("daily", **kwargs)
    if isinstance(pattern, WeeklyPattern):
        # exchangelib's weekdays are 1 (Monday) .. 7 (Sunday).
        days = tuple(
            WEEKDAYS[_number(d, _DAY_NAMES[:7], "DaysOfWeek") - 1] for d in pattern.weekdays or ()
        )
        first = pattern.first_day_of_week
        week_start = (
            "SU"
            if first is None
            else WEEKDAYS[_number(first, _DAY_NAMES[:7], "FirstDayOfWeek") - 1]
        )
        return exchange_recurrence("weekly", days=days, first_day_of_week=week_start, **kwargs)
    if isinstance(pattern, AbsoluteMonthlyPattern):
        return exchange_recurrence("absoluteMonthly", day_of_month=pattern.day_of_month, **kwargs)
    if isinstance(pattern, RelativeMonthlyPattern):
        return exchange_recurrence(
            "relativeMonthly",
            days=_days(pattern.weekday),
            set_position=_set_position(pattern.week_number),
            **kwargs,
        )
    month = getattr(pattern, "month", None)
    if isinstance(pattern, AbsoluteYearlyPattern):
        return exchange_recurrence(
            "absoluteYearly",
            day_of_month=pattern.day_of_month,
            month=_number(month, _MONTH_NAMES, "Month"),
            **kwargs,
        )
    if isinstance(pattern, RelativeYearlyPattern):
        return exchange_recurrence(
            "relativeYearly",
            days=_days(pattern.weekday),
            set_position=_set_position(pattern.week_number),
            month=_number(month, _MONTH_NAMES, "Month"),
            **kwargs,
        )
    raise UnsupportedPatternError(
        f"EWS recurrence pattern {type(pattern).__name__} is not a calendar item's (a task's "
        "regeneration pattern?)"
    )


def recurrence_from_item(item: Any) -> Recurrence | None:
    """:func:`recurrence_from_ews` of a ``CalendarItem`` (or an ItemView) and its
    occurrence lists, when it carries them."""
    return recurrence_from_ews(
        getattr(item, "recurrence", None),
        getattr(item, "modified_occurrences", None),
        getattr(item, "deleted_occurrences", None),
    )
