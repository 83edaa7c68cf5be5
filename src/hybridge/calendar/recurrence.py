"""A meeting's recurrence: the RFC 5545 rule subset Exchange and Graph express, and its
exceptions (deleted and modified occurrences), with an exact expansion.

:class:`Recurrence` carries ``FREQ`` DAILY/WEEKLY/MONTHLY/YEARLY, ``INTERVAL``, ``COUNT`` or
``UNTIL``, ``BYDAY`` (with an ordinal such as ``-1FR`` for monthly/yearly rules),
``BYMONTHDAY``, ``BYMONTH``, ``BYSETPOS`` and ``WKST`` — every Exchange pattern
(daily, weekly, absolute/relative monthly and yearly) says itself in these terms — plus
``exdates`` (EXDATE: the original starts of deleted occurrences) and ``modified``
(:class:`ModifiedOccurrence`, RECURRENCE-ID: an occurrence moved or edited on its own).

The expansion is in ``recurrence_expand`` (python-dateutil's ``rrule`` on the wall clock).

Every refusal is a :class:`RecurrenceError` whose ``field`` names the offending field, so
the wire can report it without guessing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from typing import Literal

from hybridge.calendar.errors import MeetingValueError

Frequency = Literal["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
FREQUENCIES: tuple[Frequency, ...] = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
#: RFC 5545 §3.3.10 weekday codes, Monday first (``datetime.weekday()`` order).
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
#: EWS allows 1..999 days and 1..99 weeks, months or years; Graph the same.
MAX_INTERVAL = 999
#: Outlook offers at most 999 occurrences; Graph accepts more. A sanity bound.
MAX_COUNT = 100_000
#: Deleted or modified occurrences one series may carry (Exchange has no documented cap;
#: a daily series over ten years with every occurrence edited is ~3,650).
MAX_EXCEPTIONS = 4000

#: Days in each month, 29 for February (leap years).
_LONGEST = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_BYDAY = re.compile(r"^([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


class RecurrenceError(MeetingValueError):
    """A recurrence value that RFC 5545 (or our subset of it) does not allow."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _aware(value: object, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise RecurrenceError(f"{field} {value!r} must be an aware datetime", field=field)
    return value


@dataclass(frozen=True)
class ModifiedOccurrence:
    """One occurrence of a series edited on its own (RFC 5545 RECURRENCE-ID).

    ``original_start`` is where the rule put it; ``start``/``end`` where it is now (the
    same as the rule's when only its subject or body changed). All aware.
    """

    original_start: dt.datetime
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        for name in ("original_start", "start", "end"):
            _aware(getattr(self, name), name)
        if self.end < self.start:
            raise RecurrenceError(
                f"modified occurrence of {self.original_start.isoformat()}: end "
                f"{self.end.isoformat()} is before start {self.start.isoformat()}",
                field="end",
            )


def parse_by_day(text: str) -> tuple[int | None, str]:
    """``"-1FR"`` -> ``(-1, "FR")``, ``"MO"`` -> ``(None, "MO")``; RecurrenceError otherwise."""
    match = _BYDAY.match(text) if isinstance(text, str) else None
    if match is None:
        raise RecurrenceError(
            f"by_day {text!r} must be an RFC 5545 weekday code {WEEKDAYS}, optionally with an "
            "ordinal such as '2TH' or '-1FR'",
            field="by_day",
        )
    sign, number, code = match.groups()
    if number is None:
        return None, code
    ordinal = int(number) * (-1 if sign == "-" else 1)
    if not 1 <= abs(ordinal) <= 53:
        raise RecurrenceError(f"by_day {text!r}: the ordinal must be ±1..53", field="by_day")
    return ordinal, code


def _canonical_day(text: str) -> str:
    ordinal, code = parse_by_day(text)
    return code if ordinal is None else f"{ordinal}{code}"


def _by_day_key(text: str) -> tuple[int, int]:
    ordinal, code = parse_by_day(text)
    return WEEKDAYS.index(code), 0 if ordinal is None else ordinal


def _ints(
    values: tuple[int, ...], field: str, low: int, high: int, signed: bool
) -> tuple[int, ...]:
    for v in values:
        ok = isinstance(v, int) and not isinstance(v, bool) and low <= abs(v) <= high
        if not ok or (not signed and v < 0):
            accepted = f"±{low}..{high}" if signed else f"{low}..{high}"
            raise RecurrenceError(f"{field} {v!r} must be integers {accepted}", field=field)
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class Recurrence:
    """A recurrence rule (RFC 5545 RRULE subset) with its exceptions.

    ``by_day`` holds RFC 5545 codes, an ordinal allowed for MONTHLY/YEARLY (``"-1FR"``:
    the last Friday); ``until`` is the last *local* day the series may occur on (Exchange's
    end date), ``count`` the number of occurrences including deleted ones (RFC 5545 §3.8.5.1:
    EXDATE removes from the set the rule made). Both None: no end. ``week_start`` is WKST.
    ``exdates`` are the original starts of deleted occurrences, ``modified`` the occurrences
    edited on their own.
    """

    frequency: Frequency
    interval: int = 1
    by_day: tuple[str, ...] = ()
    count: int | None = None
    until: dt.date | None = None
    by_month_day: tuple[int, ...] = ()
    by_month: tuple[int, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    week_start: str = "MO"
    exdates: tuple[dt.datetime, ...] = ()
    modified: tuple[ModifiedOccurrence, ...] = ()

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise RecurrenceError(
                f"frequency {self.frequency!r} must be one of {FREQUENCIES}", field="frequency"
            )
        if (
            isinstance(self.interval, bool)
            or not isinstance(self.interval, int)
            or not 1 <= self.interval <= MAX_INTERVAL
        ):
            raise RecurrenceError(
                f"interval {self.interval!r} must be 1..{MAX_INTERVAL}", field="interval"
            )
        if isinstance(self.by_day, str):
            raise RecurrenceError(f"by_day {self.by_day!r} must be a list of codes", field="by_day")
        by_day = tuple(sorted({_canonical_day(d) for d in self.by_day}, key=_by_day_key))
        if len(by_day) > 7 * 11:
            raise RecurrenceError(f"by_day has {len(by_day)} entries; at most 77", field="by_day")
        # RFC 5545 §3.3.10: a BYDAY ordinal MUST NOT be given unless FREQ is MONTHLY or
        # YEARLY; within MONTHLY it counts in the month, so it is at most 5.
        for text in by_day:
            ordinal, _ = parse_by_day(text)
            if ordinal is not None and self.frequency in ("DAILY", "WEEKLY"):
                raise RecurrenceError(
                    f"by_day {text!r} has an ordinal, allowed only with MONTHLY or YEARLY",
                    field="by_day",
                )
            if ordinal is not None and self.frequency == "MONTHLY" and abs(ordinal) > 5:
                raise RecurrenceError(
                    f"by_day {text!r}: a monthly ordinal must be ±1..5", field="by_day"
                )
        object.__setattr__(self, "by_day", by_day)
        if self.count is not None and (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or not 1 <= self.count <= MAX_COUNT
        ):
            raise RecurrenceError(f"count {self.count!r} must be 1..{MAX_COUNT}", field="count")
        if isinstance(self.until, dt.datetime):
            # A library's date-time end date (exchangelib gives EWS's EndDate as midnight
            # EWSDateTime): the day as written is the end date.
            object.__setattr__(self, "until", dt.date(*self.until.timetuple()[:3]))
        if self.until is not None and not isinstance(self.until, dt.date):
            raise RecurrenceError(f"until {self.until!r} must be a date", field="until")
        if self.count is not None and self.until is not None:
            # RFC 5545 §3.3.10: UNTIL and COUNT MUST NOT occur in the same rule.
            raise RecurrenceError(
                f"count {self.count} and until {self.until.isoformat()} cannot both be set",
                field="until",
            )
        month_days = _ints(self.by_month_day, "by_month_day", 1, 31, signed=True)
        months = _ints(self.by_month, "by_month", 1, 12, False)
        set_pos = _ints(self.by_set_pos, "by_set_pos", 1, 366, signed=True)
        self._check_shape(by_day, month_days, months, set_pos)
        object.__setattr__(self, "by_month_day", month_days)
        object.__setattr__(self, "by_month", months)
        object.__setattr__(self, "by_set_pos", set_pos)
        if self.week_start not in WEEKDAYS:
            raise RecurrenceError(
                f"week_start {self.week_start!r} must be one of {WEEKDAYS}", field="week_start"
            )
        self._check_exceptions()

    def _check_shape(
        self,
        by_day: tuple[str, ...],
        month_days: tuple[int, ...],
        months: tuple[int, ...],
        set_pos: tuple[int, ...],
    ) -> None:
        """Only the shapes Exchange's patterns take, each able to match some day.

        Besides RFC 5545's own rules, this keeps the expansion bounded: dateutil checks
        UNTIL only on dates that match, so a rule matching nothing (31 February, the third
        of two days) would scan to the year 9999 — half a minute for a daily rule, and a
        peer can send one.
        """
        if self.frequency in ("DAILY", "WEEKLY"):
            # Exchange's daily and weekly patterns have no month parts; RFC 5545 §3.3.10
            # forbids BYMONTHDAY with WEEKLY anyway.
            for name, value in (
                ("by_month_day", month_days),
                ("by_month", months),
                ("by_set_pos", set_pos),
            ):
                if value:
                    raise RecurrenceError(
                        f"{name} is not carried with {self.frequency} (Exchange's daily and "
                        "weekly patterns have only days)",
                        field=name,
                    )
            return
        ordinals = [parse_by_day(d)[0] for d in by_day]
        if month_days and by_day:
            raise RecurrenceError(
                "by_day and by_month_day together are not carried (an Exchange pattern has "
                "one or the other)",
                field="by_day",
            )
        if any(o is not None for o in ordinals) and (set_pos or months):
            bad = [d for d, o in zip(by_day, ordinals, strict=True) if o is not None]
            # RFC 5545 §3.3.10: within a month (MONTHLY, or YEARLY with BYMONTH) an ordinal
            # counts that month's days, so at most 5.
            if any(abs(parse_by_day(d)[0] or 0) > 5 for d in bad):
                raise RecurrenceError(
                    f"by_day {bad[0]!r}: an ordinal within a month must be ±1..5",
                    field="by_day",
                )
            if set_pos:
                raise RecurrenceError(
                    "by_set_pos with an ordinal by_day is not carried (use one or the other)",
                    field="by_set_pos",
                )
        if month_days:
            longest = max(_LONGEST[m - 1] for m in months or range(1, 13))
            if all(abs(d) > longest for d in month_days):
                raise RecurrenceError(
                    f"by_month_day {list(month_days)} never falls in months {list(months)} "
                    f"(at most {longest} days)",
                    field="by_month_day",
                )
        if set_pos:
            if not (by_day or month_days):
                raise RecurrenceError("by_set_pos needs by_day or by_month_day", field="by_set_pos")
            # The most days one period can hold: each weekday 5 times a month (53 a year),
            # each month day once a month.
            per_month = 5 * len(by_day) if by_day else len(month_days)
            if months:
                per_year = per_month * len(months)
            else:
                per_year = 53 * len(by_day) if by_day else 12 * len(month_days)
            largest = per_month if self.frequency == "MONTHLY" else per_year
            too_far = [p for p in set_pos if abs(p) > largest]
            if too_far:
                raise RecurrenceError(
                    f"by_set_pos {too_far[0]} is beyond the {largest} days a period can hold",
                    field="by_set_pos",
                )

    def _check_exceptions(self) -> None:
        exdates = tuple(sorted({_aware(d, "exdates") for d in self.exdates}))
        modified = tuple(sorted(self.modified, key=lambda m: m.original_start))
        for name, values in (("exdates", exdates), ("modified", modified)):
            if len(values) > MAX_EXCEPTIONS:
                raise RecurrenceError(
                    f"{name} has {len(values)} entries; at most {MAX_EXCEPTIONS}", field=name
                )
        for item in modified:
            if not isinstance(item, ModifiedOccurrence):
                raise RecurrenceError(
                    f"modified {item!r} must be a ModifiedOccurrence", field="modified"
                )
        originals = [m.original_start for m in modified]
        for earlier, later in itertools.pairwise(originals):
            if earlier == later:
                raise RecurrenceError(
                    f"two modified occurrences share the original start {later.isoformat()}",
                    field="modified",
                )
        both = set(originals) & set(exdates)
        if both:
            raise RecurrenceError(
                f"occurrence {min(both).isoformat()} is both deleted and modified",
                field="modified",
            )
        object.__setattr__(self, "exdates", exdates)
        object.__setattr__(self, "modified", modified)

    @property
    def rrule(self) -> str:
        """The rule as RFC 5545 RRULE text, e.g. ``FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1``.

        UNTIL is the model's local end date (``UNTIL=20271231``); exceptions are not part
        of an RRULE (they are EXDATE and RECURRENCE-ID).
        """
        parts = [f"FREQ={self.frequency}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.by_month:
            parts.append(f"BYMONTH={','.join(map(str, self.by_month))}")
        if self.by_day:
            parts.append(f"BYDAY={','.join(self.by_day)}")
        if self.by_month_day:
            parts.append(f"BYMONTHDAY={','.join(map(str, self.by_month_day))}")
        if self.by_set_pos:
            parts.append(f"BYSETPOS={','.join(map(str, self.by_set_pos))}")
        if self.week_start != "MO":
            parts.append(f"WKST={self.week_start}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.until is not None:
            parts.append(f"UNTIL={self.until:%Y%m%d}")
        return ";".join(parts)

    @property
    def is_basic(self) -> bool:
        """True when the rule is what the first wire format (daily/weekly) could say."""
        return (
            self.frequency in ("DAILY", "WEEKLY")
            and not (self.by_month_day or self.by_month or self.by_set_pos)
            and self.week_start == "MO"
            and not (self.exdates or self.modified)
        )
