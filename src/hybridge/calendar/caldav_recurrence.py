"""An iCalendar series (RFC 5545) as the model's :class:`Recurrence`: RRULE, EXDATE and the
overridden instances (VEVENTs with a RECURRENCE-ID) of one calendar object resource.

RFC 4791 §4.1 keeps a series and all its overridden instances in one resource (same UID),
so the master VEVENT and its overrides arrive together: an override becomes a
:class:`ModifiedOccurrence`, an override with ``STATUS:CANCELLED`` an EXDATE (as Outlook
and Radicale's clients write a cancelled occurrence either way).

What the model's rule cannot say — a sub-daily FREQ, BYWEEKNO, BYYEARDAY, BYHOUR and the
like, several RRULEs, RDATE — raises :class:`UnsupportedRuleError` naming the part: the
backend delivers the meeting without a rule and logs it at warning level, never a rule
that would put occurrences on other days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hybridge.calendar.errors import MeetingValueError
from hybridge.calendar.model import ModifiedOccurrence, Recurrence, zone
from hybridge.calendar.recurrence import FREQUENCIES

#: RRULE parts the model carries; anything else is refused by name.
_CARRIED = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
)


class UnsupportedRuleError(MeetingValueError):
    """An RRULE (or RDATE) the model's Recurrence cannot carry; the message says which part."""


def _local(value: Any, tz_name: str, wall: dt.time) -> dt.datetime:
    """An EXDATE/RECURRENCE-ID value as an aware datetime: a DATE is that day at the
    series' wall-clock time, a floating time is in the series' zone (RFC 5545 §3.3.5)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone(tz_name))
    return dt.datetime.combine(value, wall, tzinfo=zone(tz_name))


def _values(prop: Any) -> list[Any]:
    """The datetimes of an EXDATE property (one line, or several lines as a list)."""
    lines = prop if isinstance(prop, list) else [prop]
    return [d.dt for line in lines if line is not None for d in getattr(line, "dts", [])]


def _until(value: Any, start: dt.datetime, tz_name: str) -> dt.date:
    """RFC 5545 UNTIL (a UTC date-time, or a date) as the model's last local day.

    The model's ``until`` admits every occurrence starting on that local day, so a
    date-time before the series' wall-clock time on its day ends the day before.
    """
    if not isinstance(value, dt.datetime):
        return value  # type: ignore[no-any-return]
    local = _local(value, tz_name, start.timetz()).astimezone(zone(tz_name))
    wall = start.astimezone(zone(tz_name)).time()
    return local.date() if local.time() >= wall else local.date() - dt.timedelta(days=1)


def recurrence_from_ical(
    master: Any, overrides: list[Any], start: dt.datetime, tz_name: str
) -> Recurrence | None:
    """The model's Recurrence of a master VEVENT and its overrides (None: no RRULE).

    ``start`` is the master's DTSTART (aware) and ``tz_name`` its zone. Raises
    UnsupportedRuleError for a rule part the model does not carry and MeetingValueError
    for one RFC 5545 does not allow.
    """
    rules = master.get("RRULE")
    if rules is None:
        return None
    if isinstance(rules, list):
        raise UnsupportedRuleError(f"{len(rules)} RRULEs in one event (the model has one rule)")
    if master.get("RDATE") is not None:
        raise UnsupportedRuleError("RDATE (extra dates) is not carried by the model")
    extra = sorted(set(rules) - _CARRIED)
    frequency = str((rules.get("FREQ") or [""])[0]).upper()
    if frequency not in FREQUENCIES:
        raise UnsupportedRuleError(f"FREQ={frequency} is not carried (only {FREQUENCIES})")
    if extra:
        raise UnsupportedRuleError(f"RRULE part {extra[0]} is not carried by the model")
    wall = start.astimezone(zone(tz_name)).timetz().replace(tzinfo=None)
    exdates = {_local(v, tz_name, wall) for v in _values(master.get("EXDATE"))}
    modified: dict[float, ModifiedOccurrence] = {}
    for override in overrides:
        original = _local(override.decoded("RECURRENCE-ID"), tz_name, wall)
        if str(override.get("STATUS") or "").upper() == "CANCELLED":
            exdates.add(original)
            continue
        begin = _local(override.decoded("DTSTART"), tz_name, wall)
        end = (
            _local(override.decoded("DTEND"), tz_name, wall)
            if override.get("DTEND") is not None
            else begin
            + (override.decoded("DURATION") if override.get("DURATION") else dt.timedelta(0))
        )
        modified[original.timestamp()] = ModifiedOccurrence(original, begin, end)
    stamps = {d.timestamp() for d in exdates}
    until_value = (rules.get("UNTIL") or [None])[0]
    return Recurrence(
        frequency,
        int((rules.get("INTERVAL") or [1])[0]),
        tuple(str(d).upper().lstrip("+") for d in rules.get("BYDAY") or ()),
        int(rules["COUNT"][0]) if rules.get("COUNT") else None,
        None if until_value is None else _until(until_value, start, tz_name),
        by_month_day=tuple(int(d) for d in rules.get("BYMONTHDAY") or ()),
        by_month=tuple(int(m) for m in rules.get("BYMONTH") or ()),
        by_set_pos=tuple(int(p) for p in rules.get("BYSETPOS") or ()),
        week_start=str((rules.get("WKST") or ["MO"])[0]).upper(),
        exdates=tuple(exdates),
        # An instance both overridden and excluded is excluded (EXDATE wins, RFC 5545 §3.8.5.1).
        modified=tuple(m for key, m in modified.items() if key not in stamps),
    )
