"""Graph's ``patternedRecurrence``, read exactly, and what of it the model can carry.

:func:`parse_recurrence` reads every documented field (learn.microsoft.com,
"recurrencePattern" and "recurrenceRange" resource types) into a :class:`GraphRecurrence`
and refuses what the documentation does not allow (``RecurrenceValueError`` naming the
field). :meth:`GraphRecurrence.rrule` says the same rule in RFC 5545 terms, exactly:

==================  =========================================================================
Graph pattern       RFC 5545 RRULE
==================  =========================================================================
daily               ``FREQ=DAILY;INTERVAL=n``
weekly              ``FREQ=WEEKLY;INTERVAL=n;BYDAY=..;WKST=..`` (firstDayOfWeek)
absoluteMonthly     ``FREQ=MONTHLY;BYMONTHDAY=d``; for d > 28 ``BYMONTHDAY=28,..,d;BYSETPOS=-1``
relativeMonthly     ``FREQ=MONTHLY;BYDAY=..;BYSETPOS=k`` (index first..fourth = 1..4, last = -1)
absoluteYearly      ``FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=d`` (29 February: ``28,29;BYSETPOS=-1``)
relativeYearly      ``FREQ=YEARLY;BYMONTH=m;BYDAY=..;BYSETPOS=k``
numbered / endDate  ``COUNT=n`` / ``UNTIL=`` the end of endDate in recurrenceTimeZone, in UTC
==================  =========================================================================

Two Exchange behaviours shape that table. A monthly "day 31" (or yearly 29 February)
falls on the month's last day when the month is shorter (Outlook says so when the rule is
saved; RFC 5545's plain BYMONTHDAY would skip those months). And several ``daysOfWeek`` with
an ``index`` count the n-th of *any* of those days in the month ("the second weekend
day"; the docs: "counted from the first instance in the month"), which is BYSETPOS.

:func:`model_recurrence` maps every pattern onto
:class:`~hybridge.calendar.model.Recurrence` through
``calendar.recurrence_exchange.exchange_recurrence`` (the table above, shared with EWS);
the model's ``rrule`` is the same rule with UNTIL as the local end date.
:class:`UnmappableRecurrenceError` stays for callers that catch it; nothing raises it now.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.model import WEEKDAYS, Recurrence, zone
from hybridge.calendar.recurrence_exchange import PATTERNS, exchange_recurrence

#: Graph's dayOfWeek values, in ``WEEKDAYS`` (Monday first) order.
GRAPH_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Graph's pattern types are Exchange's own names (the same table EWS maps through).
PATTERN_TYPES = PATTERNS
RANGE_TYPES = ("endDate", "noEnd", "numbered")
#: weekIndex -> BYSETPOS.
WEEK_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
#: The model's interval limit (EWS allows 1..999 days, 1..99 weeks, months or years).
MAX_INTERVAL = 999
#: A sanity bound on numberOfOccurrences (Outlook offers at most 999).
MAX_OCCURRENCES = 100_000


class RecurrenceValueError(MeetingValueError):
    """A ``patternedRecurrence`` that the Graph documentation does not allow."""


class UnmappableRecurrenceError(MeetingValueError):
    """A valid Graph rule that the model's Recurrence cannot say (none since the model
    carries every Exchange pattern; kept so callers' ``except`` clauses stay valid)."""


def _lookup(table: dict[str, str], value: Any, field: str) -> str:
    key = str(value or "").lower()
    if key not in table:
        raise RecurrenceValueError(
            f"recurrence {field} {value!r} must be one of {sorted(set(table.values()))}"
        )
    return table[key]


_PATTERNS = {p.lower(): p for p in PATTERN_TYPES}
_RANGES = {r.lower(): r for r in RANGE_TYPES}
_DAY_CODES = {d: WEEKDAYS[i] for i, d in enumerate(GRAPH_DAYS)}


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecurrenceValueError(f"recurrence {field} {value!r} must be an integer {low}..{high}")
    return value


def _date(value: Any, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise RecurrenceValueError(
            f"recurrence {field} {value!r} must be a date like '2027-03-01'"
        ) from exc


@dataclass(frozen=True)
class GraphRecurrence:
    """A ``patternedRecurrence`` with only the fields its pattern and range type use.

    Days are RFC 5545 codes (``MO``), sorted Monday first. ``time_zone`` is the
    ``recurrenceTimeZone`` as Graph sent it ("" when absent: the event's zone applies).
    """

    type: str
    interval: int = 1
    days: tuple[str, ...] = ()
    day_of_month: int | None = None
    month: int | None = None
    first_day_of_week: str = "SU"
    index: str = "first"
    range_type: str = "noEnd"
    start_date: dt.date = dt.date(2000, 1, 1)
    end_date: dt.date | None = None
    count: int | None = None
    time_zone: str = ""

    def __post_init__(self) -> None:
        if self.type not in PATTERN_TYPES:
            raise RecurrenceValueError(
                f"recurrence pattern type {self.type!r} must be one of {list(PATTERN_TYPES)}"
            )
        _int(self.interval, "pattern interval", 1, MAX_INTERVAL)
        bad = [d for d in (*self.days, self.first_day_of_week) if d not in WEEKDAYS]
        if bad:
            raise RecurrenceValueError(f"recurrence days {bad!r} must be among {WEEKDAYS}")
        object.__setattr__(self, "days", tuple(sorted(set(self.days), key=WEEKDAYS.index)))
        if self.type in ("weekly", "relativeMonthly", "relativeYearly") and not self.days:
            raise RecurrenceValueError(
                f"recurrence pattern {self.type!r} needs daysOfWeek (at least one day)"
            )
        if self.type in ("absoluteMonthly", "absoluteYearly"):
            _int(self.day_of_month, "pattern dayOfMonth", 1, 31)
        if self.type in ("absoluteYearly", "relativeYearly"):
            month = _int(self.month, "pattern month", 1, 12)
            # Leap years included: 29 February exists, 30 February does not.
            longest = calendar.monthrange(2000, month)[1]
            if self.type == "absoluteYearly" and (self.day_of_month or 0) > longest:
                raise RecurrenceValueError(
                    f"recurrence dayOfMonth {self.day_of_month!r} does not exist in month "
                    f"{month} (at most {longest})"
                )
        if self.index not in WEEK_INDEX:
            raise RecurrenceValueError(
                f"recurrence pattern index {self.index!r} must be one of {list(WEEK_INDEX)}"
            )
        if self.range_type not in RANGE_TYPES:
            raise RecurrenceValueError(
                f"recurrence range type {self.range_type!r} must be one of {list(RANGE_TYPES)}"
            )
        if self.range_type == "numbered":
            _int(self.count, "range numberOfOccurrences", 1, MAX_OCCURRENCES)
        elif self.count is not None:
            raise RecurrenceValueError(
                f"recurrence numberOfOccurrences {self.count!r} belongs to a numbered range, "
                f"not {self.range_type!r}"
            )
        if self.range_type == "endDate":
            if self.end_date is None or self.end_date < self.start_date:
                given = None if self.end_date is None else self.end_date.isoformat()
                raise RecurrenceValueError(
                    f"recurrence range endDate {given!r} must be a date on or after "
                    f"startDate {self.start_date.isoformat()}"
                )
        elif self.end_date is not None:
            raise RecurrenceValueError(
                f"recurrence endDate {self.end_date.isoformat()} belongs to an endDate range, "
                f"not {self.range_type!r}"
            )

    @property
    def set_position(self) -> int:
        """BYSETPOS of a relative pattern (first = 1 ... fourth = 4, last = -1)."""
        return WEEK_INDEX[self.index]

    def rrule(self, zone_name: str = "UTC") -> str:
        """The rule as exact RFC 5545 RRULE text (see the module's table).

        ``zone_name`` (IANA) is the zone the range's endDate is in: UNTIL is the last
        second of that day there, in UTC (RFC 5545 §3.3.10: UNTIL is UTC when DTSTART has a
        TZID).
        """
        parts = [f"FREQ={_FREQ[self.type]}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.type in ("absoluteYearly", "relativeYearly"):
            parts.append(f"BYMONTH={self.month}")
        if self.days and self.type != "daily":
            parts.append(f"BYDAY={','.join(self.days)}")
        if self.type in ("absoluteMonthly", "absoluteYearly"):
            day = self.day_of_month or 1
            # The shortest month this rule meets: any month, or February for 29 February.
            shortest = 28 if self.type == "absoluteMonthly" or self.month == 2 else day
            if day > shortest:
                # Shorter months get their last day (Exchange), not nothing (RFC 5545).
                parts.append(f"BYMONTHDAY={','.join(str(d) for d in range(shortest, day + 1))}")
                parts.append("BYSETPOS=-1")
            else:
                parts.append(f"BYMONTHDAY={day}")
        if self.type in ("relativeMonthly", "relativeYearly"):
            parts.append(f"BYSETPOS={self.set_position}")
        if self.type == "weekly":
            parts.append(f"WKST={self.first_day_of_week}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.end_date is not None:
            last = dt.datetime.combine(self.end_date, dt.time(23, 59, 59), zone(zone_name))
            parts.append(f"UNTIL={last.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}")
        return ";".join(parts)


_FREQ = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}


def parse_recurrence(value: dict[str, Any]) -> GraphRecurrence:
    """A :class:`GraphRecurrence` from a ``patternedRecurrence`` object.

    Graph fills the fields a pattern does not use with zero values (``month: 0``,
    ``dayOfMonth: 0``, ``index: "first"``); those are ignored. Raises RecurrenceValueError
    for a missing or invalid field the pattern or range needs.
    """
    if not isinstance(value, dict):
        raise RecurrenceValueError(f"recurrence {value!r} must be a patternedRecurrence object")
    pattern, span = value.get("pattern"), value.get("range")
    if not isinstance(pattern, dict) or not isinstance(span, dict):
        raise RecurrenceValueError("recurrence needs both a pattern and a range object")
    kind = _lookup(_PATTERNS, pattern.get("type"), "pattern type")
    raw_days = pattern.get("daysOfWeek") or []
    if not isinstance(raw_days, list):
        raise RecurrenceValueError(f"recurrence daysOfWeek {raw_days!r} must be a list")
    days = tuple(_lookup(_DAY_CODES, d, "daysOfWeek") for d in raw_days)
    range_type = _lookup(_RANGES, span.get("type"), "range type")
    interval = pattern.get("interval")
    # firstDayOfWeek and index have documented defaults (sunday, first).
    first_day = _lookup(_DAY_CODES, pattern.get("firstDayOfWeek") or "sunday", "firstDayOfWeek")
    index = str(pattern.get("index") or "first") if kind.startswith("relative") else "first"
    return GraphRecurrence(
        type=kind,
        interval=1 if interval is None else interval,
        days=days if kind != "daily" else (),
        day_of_month=pattern.get("dayOfMonth") if kind.startswith("absolute") else None,
        month=pattern.get("month") if kind.endswith("Yearly") else None,
        first_day_of_week=first_day,
        index=index,
        range_type=range_type,
        start_date=_date(span.get("startDate"), "range startDate"),
        end_date=_date(span.get("endDate"), "range endDate") if range_type == "endDate" else None,
        count=span.get("numberOfOccurrences") if range_type == "numbered" else None,
        time_zone=str(span.get("recurrenceTimeZone") or ""),
    )


def model_recurrence(rule: GraphRecurrence, zone_name: str = "UTC") -> Recurrence:
    """The model's Recurrence for ``rule``, occurrence for occurrence (every pattern: see
    ``calendar.recurrence_exchange``, which EWS shares).

    ``zone_name`` (the series' zone) is unused now that UNTIL is the model's local end date;
    it is kept for callers. Raises RecurrenceValueError only for what the Graph
    documentation refuses already (the GraphRecurrence checks).
    """
    del zone_name
    try:
        return exchange_recurrence(
            rule.type,
            interval=rule.interval,
            days=rule.days,
            day_of_month=rule.day_of_month,
            month=rule.month,
            set_position=rule.set_position,
            first_day_of_week=rule.first_day_of_week,
            count=rule.count,
            until=rule.end_date,
        )
    except MeetingValueError as exc:
        raise RecurrenceValueError(f"recurrence {rule.type}: {exc}") from exc
