"""Meetings lists, idempotent updates, deletions and the rooms API, on real SQLite."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
import sqlalchemy as sa
from test_calendar_service import BASE, KEY, NOW, db, enable, meeting, migrated, orgs, put

from hybridge.calendar import wire
from hybridge.calendar.model import Recurrence, zone
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud import calendar_service as service
from hybridge.cloud.calendar_errors import CalendarInputError, CalendarNotFound
from hybridge.cloud.calendar_models import calendar_meeting, calendar_meeting_room
from hybridge.core.meetings import JoinTemplate
from hybridge.storage.db import Database

__all__ = ["db", "migrated", "orgs"]  # fixtures shared with test_calendar_service


def test_put_is_idempotent_and_details_are_stable(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    first = put(db, acme, meeting())
    assert first is not None and first.join_url.startswith(f"{BASE}/meet/j/")
    assert first.sip_address is not None and first.sip_address.endswith("@cloud.hybridge.test")
    assert first.meeting_number is not None and len(first.meeting_number.replace(" ", "")) == 10
    with db.transaction() as s:
        stamp = s.execute(sa.select(calendar_meeting.c.updated_at)).scalar_one()
    # Same meeting twice: one row, unchanged, same details.
    assert put(db, acme, meeting()) == first
    # A new version of the same meeting (same uid) keeps its join details.
    moved = put(
        db,
        acme,
        meeting(
            version="v2",
            start=meeting().start + dt.timedelta(hours=1),
            end=meeting().end + dt.timedelta(hours=1),
        ),
    )
    assert moved == first
    with db.transaction() as s:
        rows = s.execute(sa.select(calendar_meeting)).all()
        assert len(rows) == 1 and rows[0].version == "v2"
        assert stamp is not None


def test_no_keyword_or_not_organizer_gets_none(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test", "bob@acme.test")
    assert put(db, acme, meeting(subject="Plain", body="bob@webex.com")) is None
    assert put(db, acme, meeting(subject="@webex:other")) is None
    # Bob's copy of Alice's meeting: not his to edit.
    assert put(db, acme, meeting(mailbox="bob@acme.test")) is None
    # Keyword only in the body counts.
    assert (
        put(db, acme, meeting(meeting_id="b", subject="Plain", body="join @meet:space")) is not None
    )


def test_template_change_reaches_the_next_update(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    before = put(db, acme, meeting())
    assert before.template == JoinTemplate()
    with db.transaction() as s:
        service.set_template(s, acme, JoinTemplate("Hello from Acme", "Bye"), "admin", NOW)
    after = put(db, acme, meeting())
    assert after.template == JoinTemplate("Hello from Acme", "Bye")
    assert after.join_url == before.join_url
    assert after.lines()[0] == "Hello from Acme" and after.lines()[-1] == "Bye"


def test_other_organisations_mailbox_is_not_found(db: Database, orgs: tuple[str, str]) -> None:
    acme, bravo = orgs
    enable(db, acme, "alice@acme.test")
    with pytest.raises(CalendarNotFound) as info:
        put(db, bravo, meeting())
    assert str(info.value) == "mailbox 'alice@acme.test' is not an enabled user here"
    with db.transaction() as s, pytest.raises(CalendarNotFound):
        meeting_store.meetings_of(s, bravo, "alice@acme.test")


def test_delete_retain_forget_and_remove(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    for index in range(4):
        put(db, acme, meeting(meeting_id=f"m{index}", uid=f"u{index}"))
    with db.transaction() as s:
        meeting_store.delete_meeting(s, acme, "alice@acme.test", "m0")
        meeting_store.delete_meeting(s, acme, "alice@acme.test", "unknown")
        assert meeting_store.retain_meetings(s, acme, "alice@acme.test", ["m1", "m2", "zz"]) == 1
        assert [m.meeting_id for m in meeting_store.meetings_of(s, acme, "alice@acme.test")] == [
            "m1",
            "m2",
        ]
        assert (
            s.execute(sa.select(sa.func.count()).select_from(calendar_meeting_room)).scalar() == 2
        )
        service.forget_mailbox(s, acme, "alice@acme.test")
        assert meeting_store.meetings_of(s, acme, "alice@acme.test") == []
        assert (
            s.execute(sa.select(sa.func.count()).select_from(calendar_meeting_room)).scalar() == 0
        )
    put(db, acme, meeting())
    with db.transaction() as s:
        service.remove_users(s, acme, ["alice@acme.test"], "t", NOW)
        assert s.execute(sa.select(sa.func.count()).select_from(calendar_meeting)).scalar() == 0


def test_meetings_list_shows_times_in_their_zones(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    put(
        db,
        acme,
        meeting(
            end=dt.datetime(2026, 12, 1, 12, 0, tzinfo=zone("Europe/London")),
            end_tz="Europe/London",
            recurrence=Recurrence("WEEKLY", by_day=("TU",)),
        ),
    )
    with db.transaction() as s:
        [view] = meeting_store.meetings_of(s, acme, "alice@acme.test")
    assert view.start.isoformat() == "2026-12-01T10:00:00+01:00"
    assert view.end.isoformat() == "2026-12-01T12:00:00+00:00"
    assert (view.keyword, view.attendees, view.recurrence) == ("@webex", 2, "FREQ=WEEKLY;BYDAY=TU")
    assert view.to_json()["join_url"] == view.join_url is not None


def test_room_meetings_lists_occurrences_once_with_details(
    db: Database, orgs: tuple[str, str]
) -> None:
    acme, bravo = orgs
    enable(db, acme, "alice@acme.test", "bob@acme.test")
    weekly = meeting(recurrence=Recurrence("WEEKLY", by_day=("TU",), count=10))
    details = put(db, acme, weekly)
    # Bob's copy of the same meeting (same uid) must not list it twice.
    put(db, acme, replace(weekly, mailbox="bob@acme.test"))
    put(db, acme, meeting(meeting_id="other", uid="u-other", subject="No keyword"))
    start = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
    with db.transaction() as s:
        found = meeting_store.room_meetings(
            s, acme, "room1@acme.test", start, start + dt.timedelta(days=14), key=KEY, base_url=BASE
        )
        assert (
            meeting_store.room_meetings(
                s,
                bravo,
                "room1@acme.test",
                start,
                start + dt.timedelta(days=14),
                key=KEY,
                base_url=BASE,
            )
            == []
        )
    series = [f for f in found if f["meeting_id"] == weekly.meeting_id]
    assert [f["start"] for f in series] == [
        "2026-12-01T10:00:00+01:00",
        "2026-12-08T10:00:00+01:00",
    ]
    assert all(f["join_details"] == wire.join_details_to_json(details) for f in series)
    [plain] = [f for f in found if f["meeting_id"] == "other"]
    assert plain["join_details"] is None
    # A window given in another offset is the same instants: 09:30-09:45 UTC overlaps the
    # 09:00-10:00 UTC meeting (stored times carry no offset in SQLite).
    inside = dt.datetime(2026, 12, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with db.transaction() as s:
        overlap = meeting_store.room_meetings(
            s,
            acme,
            "room1@acme.test",
            inside,
            inside + dt.timedelta(minutes=15),
            key=KEY,
            base_url=BASE,
        )
    assert sorted(f["meeting_id"] for f in overlap) == ["AAMkAD/1+x=", "other"]
    with db.transaction() as s, pytest.raises(CalendarInputError) as info:
        meeting_store.room_meetings(
            s, acme, "room1@acme.test", start, start + dt.timedelta(days=32), key=KEY, base_url=BASE
        )
    assert info.value.field == "to"
