"""The calendar service's logic (users, meetings, join details, rooms) on real SQLite."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hybridge.calendar import wire
from hybridge.calendar.model import Attendee, Meeting, OutOfOffice, zone
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud import calendar_service as service
from hybridge.cloud.calendar_errors import CalendarInputError, CalendarNotFound
from hybridge.cloud.calendar_models import calendar_user
from hybridge.cloud.orgs import get_or_create_organisation
from hybridge.storage import StorageError
from hybridge.storage.db import Database, open_database, sqlite_url

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
BASE = "https://cloud.hybridge.test"
KEY = bytes(range(32))
BERLIN = zone("Europe/Berlin")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated cloud database, made once: each test works on a copy."""
    path = tmp_path_factory.mktemp("calendar") / "cloud.db"
    open_database(sqlite_url(path), "cloud").dispose()
    return path


@pytest.fixture
def db(tmp_path: Path, migrated: Path) -> Iterator[Database]:
    shutil.copy(migrated, tmp_path / "cloud.db")
    database = open_database(sqlite_url(tmp_path / "cloud.db"), "cloud")
    yield database
    database.dispose()


@pytest.fixture
def orgs(db: Database) -> tuple[str, str]:
    with db.transaction() as s:
        return (
            get_or_create_organisation(s, "Acme", NOW).id,
            get_or_create_organisation(s, "Bravo", NOW).id,
        )


def meeting(**over: Any) -> Meeting:
    fields: dict[str, Any] = {
        "mailbox": "alice@acme.test",
        "meeting_id": "AAMkAD/1+x=",
        "version": "v1",
        "uid": "uid-1",
        "organizer": "alice@acme.test",
        "subject": "Planning @webex",
        "start": dt.datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN),
        "end": dt.datetime(2026, 12, 1, 11, 0, tzinfo=BERLIN),
        "start_tz": "Europe/Berlin",
        "end_tz": "Europe/Berlin",
        "body": "Agenda",
        "attendees": (Attendee("bob@acme.test"), Attendee("room1@acme.test", "resource")),
    }
    fields.update(over)
    return Meeting(**fields)


def enable(db: Database, org: str, *mailboxes: str) -> service.UsersChange:
    with db.transaction() as s:
        return service.add_users(
            s, org, [(m, m.split("@")[0].title()) for m in mailboxes], "t", NOW
        )


def put(db: Database, org: str, m: Meeting) -> Any:
    with db.transaction() as s:
        return meeting_store.put_meeting(s, org, m, key=KEY, base_url=BASE, now=NOW)


def test_version_grows_on_every_change_and_only_then(db: Database, orgs: tuple[str, str]) -> None:
    acme, bravo = orgs
    with db.transaction() as s:
        assert service.users_version(s, acme) == 0
    assert enable(db, acme, "alice@acme.test", "bob@acme.test").version == 1
    again = enable(db, acme, "alice@acme.test")
    assert (again.version, again.changed, again.unchanged) == (1, (), ("alice@acme.test",))
    with db.transaction() as s:
        renamed = service.add_users(s, acme, [("alice@acme.test", "Alice A.")], "t", NOW)
        assert renamed.version == 2
        removed = service.remove_users(s, acme, ["bob@acme.test", "nobody@acme.test"], "t", NOW)
        assert (removed.version, removed.changed, removed.unchanged) == (
            3,
            ("bob@acme.test",),
            ("nobody@acme.test",),
        )
        assert [u.mailbox for u in service.list_users(s, acme)] == ["alice@acme.test"]
        # Another organisation's list is its own, with its own version.
        assert service.users_version(s, bravo) == 0
        assert service.list_users(s, bravo) == []


def test_parse_users_accepts_three_forms_and_names_a_bad_line() -> None:
    text = "# comment\nAlice@Acme.test, Alice\n\nBob Builder <bob@acme.test>\ncarol@acme.test\n"
    assert service.parse_users(text) == [
        ("alice@acme.test", "Alice"),
        ("bob@acme.test", "Bob Builder"),
        ("carol@acme.test", ""),
    ]
    with pytest.raises(CalendarInputError) as info:
        service.parse_users("alice@acme.test\nnot an address\n")
    assert info.value.field == "line 2"
    assert "'not an address' is not a mailbox address" in str(info.value)


@pytest.mark.parametrize("bad", ["", "alice", "a@b@c", "a b@c.d", "<a@b.c>", "x" * 65 + "@b.c"])
def test_check_mailbox_refuses(bad: str) -> None:
    with pytest.raises(CalendarInputError) as info:
        service.check_mailbox(bad)
    assert info.value.field == "mailbox"


def test_status_and_out_of_office_are_recorded(db: Database, orgs: tuple[str, str]) -> None:
    acme, bravo = orgs
    enable(db, acme, "alice@acme.test")
    until = dt.datetime(2026, 12, 24, 0, 0, tzinfo=dt.UTC)
    report = wire.StatusReport(
        "error",
        "impersonation denied for alice@acme.test",
        OutOfOffice("scheduled", True, end=until),
    )
    with db.transaction() as s:
        service.set_status(s, acme, "alice@acme.test", report, NOW)
        [user] = service.list_users(s, acme)
    assert (user.status, user.reason) == ("error", "impersonation denied for alice@acme.test")
    assert (user.ooo_state, user.ooo_active, user.ooo_until) == ("scheduled", True, until)
    with db.transaction() as s, pytest.raises(CalendarNotFound):
        service.set_status(s, bravo, "alice@acme.test", report, NOW)


def test_template_limits_name_the_field() -> None:
    assert service.check_template("h" * 1024, "").header == "h" * 1024
    with pytest.raises(CalendarInputError) as info:
        service.check_template("", "f" * 1025)
    assert info.value.field == "footer"
    assert "footer has 1025 characters; at most 1024" in str(info.value)


def test_a_lost_insert_race_is_run_once_more(db: Database, orgs: tuple[str, str]) -> None:
    acme, _ = orgs
    enable(db, acme, "alice@acme.test")
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        with db.transaction() as s:
            if len(calls) == 1:
                # What the loser of a race sees: the winner's row is already there.
                s.execute(
                    sa.insert(calendar_user).values(
                        org_id=acme,
                        mailbox="alice@acme.test",
                        display_name="",
                        added_at=NOW,
                        added_by="t",
                        status="pending",
                        reason="",
                    )
                )
            return service.add_users(s, acme, [("alice@acme.test", "")], "t", NOW).version

    assert service.retry_on_conflict(work) == 1
    assert len(calls) == 2

    def broken() -> None:
        calls.append(1)
        with db.transaction() as s:
            s.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(StorageError):
        service.retry_on_conflict(broken)
    assert len(calls) == 3
