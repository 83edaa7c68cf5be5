"""The cloud keeps and shows every recurrence: a monthly series with deleted and moved
occurrences is listed with its rule in plain English, the rooms API follows the
exceptions and reaches a window years after a series began, and a meeting stored in the
first wire format (before format 2) still lists. Real SQLite."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from test_calendar_service import BASE, KEY, db, enable, meeting, migrated, orgs, put

from hybridge.calendar import wire
from hybridge.calendar.model import ModifiedOccurrence, Recurrence, zone
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud.calendar_models import calendar_meeting
from hybridge.storage.db import Database

__all__ = ["db", "migrated", "orgs"]  # fixtures shared with test_calendar_service

BERLIN = zone("Europe/Berlin")
LAST_WEEKDAY = Recurrence(
    "MONTHLY",
    by_day=("MO", "TU", "WE", "TH", "FR"),
    by_set_pos=(-1,),
    exdates=(dt.datetime(2027, 1, 29, 10, tzinfo=BERLIN),),
    modified=(
        ModifiedOccurrence(
            dt.datetime(2027, 2, 26, 10, tzinfo=BERLIN),
            dt.datetime(2027, 2, 25, 15, tzinfo=BERLIN),
            # Moved, and 30 minutes where the series' meetings last an hour.
            dt.datetime(2027, 2, 25, 15, 30, tzinfo=BERLIN),
        ),
    ),
)


def _rooms(db: Database, org: str, start: dt.datetime, days: int) -> list[dict[str, object]]:
    with db.transaction() as s:
        return meeting_store.room_meetings(
            s,
            org,
            "room1@acme.test",
            start,
            start + dt.timedelta(days=days),
            key=KEY,
            base_url=BASE,
        )


def test_a_monthly_series_is_listed_with_its_rule_in_words(
    db: Database, orgs: tuple[str, str]
) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    series = meeting(
        start=dt.datetime(2026, 12, 31, 10, tzinfo=BERLIN),
        end=dt.datetime(2026, 12, 31, 11, tzinfo=BERLIN),
        recurrence=LAST_WEEKDAY,
    )
    put(db, acme, series)
    with db.transaction() as s:
        [view] = meeting_store.meetings_of(s, acme, "alice@acme.test")
        stored = s.execute(sa.select(calendar_meeting.c.document)).scalar_one()
    assert view.recurrence == "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    assert (
        view.repeats == "Monthly on the last weekday (1 occurrence cancelled, 1 occurrence changed)"
    )
    assert view.to_json()["repeats"] == view.repeats
    # Stored whole, exceptions included.
    assert wire.meeting_from_json(stored).recurrence == LAST_WEEKDAY
    # December 31st, January's deleted, February's moved to Thursday the 25th 15:00.
    found = _rooms(db, acme, dt.datetime(2026, 12, 30, tzinfo=dt.UTC), 31)
    assert [f["start"] for f in found] == ["2026-12-31T10:00:00+01:00"]
    found = _rooms(db, acme, dt.datetime(2027, 2, 1, tzinfo=dt.UTC), 31)
    assert [(f["start"], f["end"]) for f in found] == [
        ("2027-02-25T15:00:00+01:00", "2027-02-25T15:30:00+01:00")
    ]


def test_a_window_years_after_the_series_began_is_reached(
    db: Database, orgs: tuple[str, str]
) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    daily = meeting(
        start=dt.datetime(2020, 1, 6, 10, tzinfo=BERLIN),
        end=dt.datetime(2020, 1, 6, 10, 15, tzinfo=BERLIN),
        recurrence=Recurrence("DAILY", 3),
    )
    put(db, acme, daily)
    found = _rooms(db, acme, dt.datetime(2027, 3, 1, tzinfo=dt.UTC), 7)
    # Every third day since 6 January 2020, still at 10:00 Berlin after DST changes.
    starts = [dt.datetime.fromisoformat(str(f["start"])) for f in found]
    days = [dt.date(2027, 3, 1) + dt.timedelta(days=n) for n in range(7)]
    expected = [d for d in days if (d - dt.date(2020, 1, 6)).days % 3 == 0]
    assert [s.date() for s in starts] == expected and len(expected) >= 2
    assert [s.hour for s in starts] == [10] * len(expected)


def test_a_meeting_stored_in_the_first_format_still_lists(
    db: Database, orgs: tuple[str, str]
) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    put(db, acme, meeting(recurrence=Recurrence("WEEKLY", by_day=("TU",), count=3)))
    with db.transaction() as s:
        document = s.execute(sa.select(calendar_meeting.c.document)).scalar_one()
        # What a cloud before format 2 stored: exactly the five first-format fields.
        assert set(document["recurrence"]) == {"frequency", "interval", "by_day", "count", "until"}
        [view] = meeting_store.meetings_of(s, acme, "alice@acme.test")
    assert (view.recurrence, view.repeats) == (
        "FREQ=WEEKLY;BYDAY=TU;COUNT=3",
        "Weekly on Tuesday, 3 times",
    )
