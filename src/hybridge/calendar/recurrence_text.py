"""A recurrence said in plain English, for the meetings list ("Monthly on the last weekday").

:func:`describe` covers every rule the model holds; Exchange's own shapes read the way
Outlook says them ("Monthly on day 31, or the month's last day", "Yearly on the fourth
Thursday of November"); anything else falls back to naming its parts. The RRULE stays
next to it on the page for the exact rule.

Written by hand: the one library that does this (``recurrent``/``rrule.to_text`` ports)
is unmaintained and does not know Exchange's "last day of shorter months" shape.
"""

from __future__ import annotations

import calendar

from hybridge.calendar.recurrence import WEEKDAYS, Recurrence, parse_by_day

_DAY_NAMES = dict(zip(WEEKDAYS, calendar.day_name, strict=True))
_UNITS = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}
_EVERY = {"DAILY": "Daily", "WEEKLY": "Weekly", "MONTHLY": "Monthly", "YEARLY": "Yearly"}
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
_WEEKDAY_SET = ("MO", "TU", "WE", "TH", "FR")
_WEEKEND_SET = ("SA", "SU")


def _ordinal(n: int) -> str:
    if n in _ORDINALS:
        return _ORDINALS[n]
    if n == -2:
        return "second-to-last"
    suffix = (
        "th" if 10 <= abs(n) % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(abs(n) % 10, "th")
    )
    return f"{abs(n)}{suffix}" + (" from last" if n < 0 else "")


def _join(words: list[str], last: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


def _day_group(codes: tuple[str, ...]) -> str:
    if codes == WEEKDAYS:
        return "day"
    if codes == _WEEKDAY_SET:
        return "weekday"
    if codes == _WEEKEND_SET:
        return "weekend day"
    return _join([_DAY_NAMES[c] for c in codes], "or")


def _month_day(days: tuple[int, ...], set_pos: tuple[int, ...]) -> str | None:
    """Exchange's "day d, or the month's last day" (28..d with BYSETPOS=-1), else None."""
    if set_pos == (-1,) and len(days) > 1 and days == tuple(range(days[0], days[-1] + 1)):
        return f"day {days[-1]}, or the month's last day"
    return None


def _days_phrase(rule: Recurrence) -> str:
    parsed = [parse_by_day(d) for d in rule.by_day]
    plain = tuple(code for ordinal, code in parsed if ordinal is None)
    with_ordinal = [f"the {_ordinal(o)} {_DAY_NAMES[c]}" for o, c in parsed if o is not None]
    phrases: list[str] = []
    if plain and rule.by_set_pos and not rule.by_month_day:
        group = _day_group(plain)
        phrases.append(_join([f"the {_ordinal(p)} {group}" for p in rule.by_set_pos], "and"))
    elif plain:
        phrases.append(_join([_DAY_NAMES[c] for c in plain]))
    phrases += with_ordinal
    if rule.by_month_day:
        exchange = _month_day(rule.by_month_day, rule.by_set_pos)
        if exchange is not None:
            phrases.append(exchange)
        else:
            named = ["the last day" if d == -1 else f"day {d}" for d in rule.by_month_day]
            named = [n if not n.startswith("day -") else f"day {n[5:]} from last" for n in named]
            phrases.append(_join(named))
    return _join(phrases)


def _yearly_date(rule: Recurrence) -> str | None:
    """ "29 February, or 28 February in common years" for Exchange's yearly dates."""
    if rule.frequency != "YEARLY" or rule.by_day or len(rule.by_month) != 1:
        return None
    month = calendar.month_name[rule.by_month[0]]
    days = rule.by_month_day
    if len(days) == 1 and days[0] > 0 and not rule.by_set_pos:
        return f"{days[0]} {month}"
    if _month_day(days, rule.by_set_pos) is not None and days[0] > 0:
        if rule.by_month == (2,) and days == (28, 29):
            return "29 February, or 28 February in common years"
        return f"{days[-1]} {month}, or the month's last day"
    return None


def describe(rule: Recurrence) -> str:
    """The rule in plain English, e.g. ``"Monthly on the last weekday, 6 times"``."""
    unit = _UNITS[rule.frequency]
    text = _EVERY[rule.frequency] if rule.interval == 1 else f"Every {rule.interval} {unit}s"
    days = _days_phrase(rule)
    months = _join([calendar.month_name[m] for m in rule.by_month])
    yearly_date = _yearly_date(rule)
    if yearly_date is not None:
        text += f" on {yearly_date}"
    elif days:
        text += f" on {days}"
        if months:
            text += f" of {months}" if rule.frequency == "YEARLY" else f", in {months}"
    elif months:
        text += f" in {months}"
    if (
        rule.by_set_pos
        and not (rule.by_day and not rule.by_month_day)
        and _month_day(rule.by_month_day, rule.by_set_pos) is None
    ):
        text += f" (occurrence {_join([str(p) for p in rule.by_set_pos])} of each {unit})"
    if rule.week_start != "MO":
        text += f" (weeks start on {_DAY_NAMES[rule.week_start]})"
    if rule.count is not None:
        text += ", once" if rule.count == 1 else f", {rule.count} times"
    if rule.until is not None:
        text += (
            f", until {rule.until.day} {calendar.month_name[rule.until.month]} {rule.until.year}"
        )
    notes = []
    if rule.exdates:
        n = len(rule.exdates)
        notes.append(f"{n} occurrence{'s' if n != 1 else ''} cancelled")
    if rule.modified:
        n = len(rule.modified)
        notes.append(f"{n} occurrence{'s' if n != 1 else ''} changed")
    if notes:
        text += f" ({', '.join(notes)})"
    return text
