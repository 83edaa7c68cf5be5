"""Join details: stable per meeting, different between meetings; the per-cloud key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_calendar_service import db, enable, meeting, migrated, orgs, put

from hybridge.cloud.calendar_join import KEY_FILE, load_join_key
from hybridge.cloud.errors import CloudKeyError
from hybridge.storage.db import Database

__all__ = ["db", "migrated", "orgs"]  # fixtures shared with test_calendar_service


def test_details_differ_between_meetings_and_kinds(db: Database, orgs: tuple[str, str]) -> None:
    acme, bravo = orgs
    enable(db, acme, "alice@acme.test", "bob@acme.test")
    enable(db, bravo, "alice@acme.test")
    one = put(db, acme, meeting(meeting_id="m1", uid="u1"))
    two = put(db, acme, meeting(meeting_id="m2", uid="u2"))
    assert one.join_url != two.join_url and one.meeting_number != two.meeting_number
    # No uid: the item id names the meeting.
    three = put(db, acme, meeting(meeting_id="m3", uid=""))
    assert three.join_url not in (one.join_url, two.join_url)
    # :myroom is the organizer's personal room: the same for all their meetings.
    room_a = put(db, acme, meeting(meeting_id="m4", uid="u4", subject="@webex:myroom"))
    room_b = put(db, acme, meeting(meeting_id="m5", uid="u5", subject="x @WebEx:MyRoom"))
    assert room_a.join_url == room_b.join_url and "/meet/room/" in room_a.join_url
    bobs = put(
        db,
        acme,
        meeting(
            mailbox="bob@acme.test",
            organizer="bob@acme.test",
            meeting_id="m6",
            subject="@webex:myroom",
        ),
    )
    assert bobs.join_url != room_a.join_url
    # A space and a one-time meeting of the same meeting are different rooms.
    space = put(db, acme, meeting(meeting_id="m1", uid="u1", subject="@meet"))
    assert "/meet/space/" in space.join_url and space.join_url != one.join_url
    # The same mailbox and uid in another organisation gets other details.
    other = put(db, bravo, meeting(meeting_id="m1", uid="u1"))
    assert other.join_url != one.join_url


def test_join_key_is_made_once_private_and_checked(tmp_path: Path) -> None:
    key = load_join_key(tmp_path)
    assert len(key) == 32 and load_join_key(tmp_path) == key
    assert (os.stat(tmp_path / KEY_FILE).st_mode & 0o777) == 0o600
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(CloudKeyError) as info:
        load_join_key(tmp_path)
    assert "has 5 bytes; 32 are expected" in str(info.value)
    assert "short" not in str(info.value)
