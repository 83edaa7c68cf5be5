"""Expanding a :class:`~hybridge.calendar.recurrence.Recurrence` into occurrence starts.

:func:`expand` is python-dateutil's ``rrule`` (the reference implementation of RFC 5545
rules in Python) run on the *wall-clock* start in the meeting's zone, so a 10:00 meeting
stays at 10:00 local across DST (RFC 5545 §3.3.10); only COUNT (applied here, so the
horizon bounds a counted rule too), the set operations (EXDATE, moved occurrences) and the
time-zone attachment are ours.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterator
from typing import cast
from zoneinfo import ZoneInfo

from dateutil import rrule as du

from hybridge.calendar.recurrence import WEEKDAYS, Recurrence, parse_by_day

#: How far past its start a series is expanded at most (see :func:`expand`).
HORIZON_YEARS = 100

_FREQ = {"DAILY": du.DAILY, "WEEKLY": du.WEEKLY, "MONTHLY": du.MONTHLY, "YEARLY": du.YEARLY}
_DU_DAYS = (du.MO, du.TU, du.WE, du.TH, du.FR, du.SA, du.SU)


def _rule(rule: Recurrence, local_start: dt.datetime, local_end: dt.datetime) -> du.rrule:
    days = []
    for text in rule.by_day:
        ordinal, code = parse_by_day(text)
        day = _DU_DAYS[WEEKDAYS.index(code)]
        days.append(day if ordinal is None else day(ordinal))
    until = local_end
    if rule.until is not None:
        # The whole last local day: any occurrence that starts on it is in.
        until = min(until, dt.datetime.combine(rule.until, dt.time(23, 59, 59)))
    return du.rrule(
        _FREQ[rule.frequency],
        dtstart=local_start,
        interval=rule.interval,
        wkst=WEEKDAYS.index(rule.week_start),
        # COUNT is applied by expand(): dateutil deprecates COUNT together with UNTIL, and
        # the horizon must bound a counted rule too.
        until=until,
        bysetpos=rule.by_set_pos or None,
        bymonth=rule.by_month or None,
        bymonthday=rule.by_month_day or None,
        byweekday=days or None,
        cache=False,
    )


def _in_zone(local: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    # RFC 5545 §3.3.5: a local time in a DST gap takes the offset from before the gap
    # (zoneinfo's fold=0); through the instant it is shown as the valid local time.
    return dt.datetime.fromtimestamp(local.replace(tzinfo=tz).timestamp(), tz)


def expand(
    rule: Recurrence, start: dt.datetime, tz: ZoneInfo, before: dt.datetime | None = None
) -> Iterator[dt.datetime]:
    """The series' occurrence starts in time order, aware in ``tz``: the rule applied to
    ``start``'s wall clock in ``tz`` (to COUNT/UNTIL), deleted occurrences left out and
    modified ones at their new start; only those before ``before`` (aware) when given.

    The expansion never runs past :data:`HORIZON_YEARS` after ``start``: a rule that can
    never match (``BYMONTH=2;BYMONTHDAY=31``) would otherwise make dateutil scan to the
    year 9999 (33 s for a daily rule), and a peer can send one.
    """
    local = start.astimezone(tz).replace(tzinfo=None)
    never = False
    if rule.frequency == "MONTHLY" and rule.by_month:
        # Every n months from the start's month may never reach BYMONTH's months (and
        # dateutil would scan to the year 9999 to find that out).
        visited = {(local.month - 1 + k * rule.interval) % 12 + 1 for k in range(12)}
        never = not visited & set(rule.by_month)
    horizon = local.replace(year=local.year + HORIZON_YEARS, day=min(local.day, 28))
    if before is not None:
        horizon = min(horizon, before.astimezone(tz).replace(tzinfo=None) + dt.timedelta(days=1))
    removed = {d.timestamp() for d in rule.exdates}
    moved = {m.original_start.timestamp() for m in rule.modified}
    limit = math.inf if before is None else before.timestamp()
    pending = sorted(
        (m.start.astimezone(tz) for m in rule.modified if m.start.timestamp() < limit),
        key=lambda d: d.timestamp(),
        reverse=True,
    )
    for index, naive in enumerate(() if never else _rule(rule, local, horizon)):
        if rule.count is not None and index >= rule.count:
            break
        when = _in_zone(cast(dt.datetime, naive), tz)
        stamp = when.timestamp()
        if stamp >= limit:
            break
        while pending and pending[-1].timestamp() <= stamp:
            yield pending.pop()
        if stamp in removed or stamp in moved:
            continue
        yield when
    while pending:
        yield pending.pop()


def expand_first(
    rule: Recurrence,
    start: dt.datetime,
    tz: ZoneInfo,
    limit: int,
    before: dt.datetime | None = None,
) -> list[dt.datetime]:
    """The first ``limit`` starts of :func:`expand`."""
    return list(itertools.islice(expand(rule, start, tz, before), max(limit, 0)))
