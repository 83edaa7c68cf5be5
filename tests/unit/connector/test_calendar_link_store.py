"""The calendar link's tables (migration 0008) on a real SQLite node database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridge.calendar.model import Meeting
from hybridge.connector.calendar_cloud import EnabledUser, UserList
from hybridge.connector.calendar_store import LinkStore
from hybridge.storage.db import Database, open_database, sqlite_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LinkStore]:
    database: Database = open_database(sqlite_url(tmp_path / "node.db"), "node")
    yield LinkStore(database)
    database.dispose()


def meeting(meeting_id: str, subject: str, owner: str = "alice@contoso.test") -> Meeting:
    start = dt.datetime(2027, 1, 5, 9, tzinfo=dt.UTC)
    return Meeting(owner, meeting_id, "v1", owner, subject, start, start, "UTC", "UTC")


def test_the_user_list_survives_and_304_keeps_it(store: LinkStore) -> None:
    assert store.users() is None
    users = UserList(4, (EnabledUser("alice@contoso.test", "Alice"), EnabledUser("b@c.d")))
    store.save_users(users)
    assert store.users() == users
    store.save_users(None)  # 304: nothing changes but the time of the fetch
    assert store.users() == users and store.fetched_at() is not None
    store.save_users(UserList(5, ()))
    assert store.users() == UserList(5, ())
    store.clear_users()
    assert store.users() is None


def test_meetings_are_counted_per_mailbox(store: LinkStore) -> None:
    store.meeting_seen(meeting("m1", "Plain"))
    store.meeting_seen(meeting("m2", "Sync @webex"))
    store.meeting_seen(meeting("m2", "Sync @webex"))  # twice is once
    store.meeting_seen(meeting("x1", "Other", "bob@contoso.test"))
    assert store.meeting_counts() == {"alice@contoso.test": (2, 1), "bob@contoso.test": (1, 0)}
    store.meeting_gone("alice@contoso.test", "m1")
    store.retain("bob@contoso.test", frozenset())
    assert store.meeting_counts() == {"alice@contoso.test": (1, 1)}


def test_a_status_is_sent_once_until_it_changes(store: LinkStore) -> None:
    assert store.set_status("alice@contoso.test", "error", "denied", None) is True
    # Not yet acknowledged: still to be sent.
    assert store.set_status("alice@contoso.test", "error", "denied", None) is True
    store.mark_reported("alice@contoso.test", "error", "denied")
    assert store.set_status("alice@contoso.test", "error", "denied", None) is False
    row = store.status("alice@contoso.test")
    assert row is not None and row.reported
    # An acknowledgement of an older status does not mark a newer one as sent.
    assert store.set_status("alice@contoso.test", "ok", "", {"state": "disabled"}) is True
    store.mark_reported("alice@contoso.test", "error", "denied")
    row = store.status("alice@contoso.test")
    assert row is not None and not row.reported and row.out_of_office == {"state": "disabled"}


def test_a_removed_user_is_forgotten_and_a_pending_removal_kept(store: LinkStore) -> None:
    store.meeting_seen(meeting("m1", "Plain"))
    store.set_status("alice@contoso.test", "ok", "", None)
    store.forget_user("alice@contoso.test", pending=True)
    assert store.meeting_counts() == {}
    assert store.status("alice@contoso.test") is None
    assert store.pending_removals() == ["alice@contoso.test"]
    store.removal_done("alice@contoso.test")
    assert store.pending_removals() == []
