"""The contract every CalendarBackend honours, run against each real server: EWS (the
emulator, exchangelib unmodified), CalDAV (Radicale, the caldav library) and Microsoft
Graph (the emulator, msal and httpx unmodified)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from hybridge.calendar.errors import (
    CredentialsRejectedError,
    InvalidSyncStateError,
    MailboxNotFoundError,
    MeetingNotFoundError,
)
from hybridge.calendar.model import Attendee, Meeting, Recurrence
from hybridge.core.meetings import BEGIN_MARKER, END_MARKER, JoinDetails, JoinTemplate

START = dt.datetime(2027, 1, 11, 9, 0, tzinfo=dt.UTC)
DETAILS = JoinDetails(
    "https://meet.example.com/j/abc",
    JoinTemplate(header="Contoso meeting", footer="Help: x1234"),
    sip_address="123456789@meet.example.com",
    meeting_number="123 456 789",
)


def drain(backend: Any, mailbox: str, state: str | None = None) -> tuple[list[Any], str]:
    changes: list[Any] = []
    while True:
        page = backend.changes(mailbox, state, max_changes=50)
        changes.extend(page.changes)
        state = page.state
        if not page.more:
            return changes, state


def upserts(changes: list[Any]) -> dict[str, Meeting]:
    return {c.meeting_id: c.meeting for c in changes if c.kind == "upsert"}


def test_initial_sync_lists_meetings_with_their_fields(harness: Any) -> None:
    alice, bob = harness.mailbox("alice"), harness.mailbox("bob")
    mid = harness.add(
        alice,
        "Budget review @webex:space",
        body="Agenda: numbers",
        start=START,
        attendees=(bob,),
        location="Room 1",
    )
    changes, state = drain(harness.backend, alice)
    meeting = upserts(changes)[mid]
    assert meeting.subject == "Budget review @webex:space"
    assert meeting.organizer == alice
    assert meeting.start == START and meeting.end == START + dt.timedelta(hours=1)
    assert meeting.start_tz == "UTC"
    assert meeting.location == "Room 1"
    assert Attendee(bob, "required") in meeting.attendees
    assert meeting.keyword is not None and meeting.keyword.text == "@webex:space"
    assert meeting.body.startswith("Agenda: numbers")
    # Nothing changed since: an empty page from the new state.
    again, _ = drain(harness.backend, alice, state)
    assert again == []


def test_updates_and_deletions_come_after_the_state(harness: Any) -> None:
    alice = harness.mailbox("alice")
    keep = harness.add(alice, "Keep", start=START)
    gone = harness.add(alice, "Gone", start=START + dt.timedelta(hours=2))
    _, state = drain(harness.backend, alice)
    harness.set_subject(alice, keep, "Kept and renamed")
    harness.remove(alice, gone)
    changes, state2 = drain(harness.backend, alice, state)
    assert upserts(changes)[keep].subject == "Kept and renamed"
    assert [c.meeting_id for c in changes if c.kind == "delete"] == [gone]
    assert state2 != state


def test_read_returns_the_current_meeting_and_refuses_a_gone_one(harness: Any) -> None:
    alice = harness.mailbox("alice")
    mid = harness.add(alice, "Read me", start=START)
    assert harness.backend.read(alice, mid).subject == "Read me"
    harness.remove(alice, mid)
    with pytest.raises(MeetingNotFoundError, match=r"gone|holds no"):
        harness.backend.read(alice, mid)


def test_write_join_details_once_keeps_organizer_text(harness: Any) -> None:
    alice = harness.mailbox("alice")
    mid = harness.add(alice, "Sync @webex", body="Organizer notes", start=START)
    assert harness.backend.write_join_details(alice, mid, DETAILS) == "written"
    assert harness.backend.write_join_details(alice, mid, DETAILS) == "unchanged"
    body = harness.body(alice, mid)
    assert body.startswith("Organizer notes")
    assert body.count(BEGIN_MARKER) == 1 and body.count(END_MARKER) == 1
    assert "https://meet.example.com/j/abc" in body
    # The organizer edits their part later: a re-write keeps the edit and one block.
    harness.set_body(alice, mid, body.replace("Organizer notes", "Organizer notes v2"))
    assert harness.backend.write_join_details(alice, mid, DETAILS) == "unchanged"
    assert harness.body(alice, mid).startswith("Organizer notes v2")


def test_removing_join_details_restores_the_body(harness: Any) -> None:
    alice = harness.mailbox("alice")
    mid = harness.add(alice, "Sync @meet", body="Just notes", start=START)
    harness.backend.write_join_details(alice, mid, DETAILS)
    assert harness.backend.write_join_details(alice, mid, None) == "written"
    assert harness.body(alice, mid).strip() == "Just notes"
    assert harness.backend.write_join_details(alice, mid, None) == "unchanged"


def test_write_to_a_gone_meeting_is_refused(harness: Any) -> None:
    alice = harness.mailbox("alice")
    mid = harness.add(alice, "Short-lived", start=START)
    harness.remove(alice, mid)
    with pytest.raises(MeetingNotFoundError):
        harness.backend.write_join_details(alice, mid, DETAILS)


def test_weekly_meeting_in_berlin_keeps_local_time_across_dst(harness: Any) -> None:
    # Monday 22 March 2027 10:00 CET (+01:00); DST starts Sunday 28 March 2027.
    alice = harness.mailbox("alice")
    berlin_start = dt.datetime(2027, 3, 22, 9, 0, tzinfo=dt.UTC)
    mid = harness.add(alice, "Jour fixe", start=berlin_start, tz="Europe/Berlin", weekly=("MO",))
    meeting = upserts(drain(harness.backend, alice)[0])[mid]
    assert meeting.start_tz == "Europe/Berlin"
    assert meeting.recurrence == Recurrence("WEEKLY", 1, ("MO",))
    starts = meeting.occurrence_starts(3)
    assert [s.hour for s in starts] == [10, 10, 10]  # wall clock in Berlin
    assert [s.astimezone(dt.UTC).hour for s in starts] == [9, 8, 8]  # CET, then CEST
    assert [s.day for s in starts] == [22, 29, 5]


def test_monthly_meeting_on_the_last_weekday_keeps_its_rule(harness: Any) -> None:
    # Friday 29 January 2027, 17:00 in Berlin; six occurrences across the DST change.
    alice = harness.mailbox("alice")
    start = dt.datetime(2027, 1, 29, 16, 0, tzinfo=dt.UTC)
    mid = harness.add(
        alice, "Month close", start=start, tz="Europe/Berlin", last_weekday_of_month=6
    )
    meeting = upserts(drain(harness.backend, alice)[0])[mid]
    assert meeting.start_tz == "Europe/Berlin"
    assert meeting.recurrence == Recurrence(
        "MONTHLY", by_day=("MO", "TU", "WE", "TH", "FR"), by_set_pos=(-1,), count=6
    )
    starts = meeting.occurrence_starts(10)
    assert [(s.month, s.day, s.hour) for s in starts] == [
        (1, 29, 17),
        (2, 26, 17),
        (3, 31, 17),
        (4, 30, 17),
        (5, 31, 17),
        (6, 30, 17),
    ]
    assert [s.astimezone(dt.UTC).hour for s in starts] == [16, 16, 15, 15, 15, 15]


def test_refused_sync_state_is_invalid_sync_state(harness: Any) -> None:
    alice = harness.mailbox("alice")
    harness.add(alice, "x", start=START)
    _, state = drain(harness.backend, alice)
    if harness.kind == "ews":
        harness.emulator.store.invalidate_sync_states(alice)
        bad = state
    elif harness.kind == "graph":
        assert harness.emulator.invalidate_delta_tokens(alice) >= 1  # 410 syncStateNotFound
        bad = state
    else:
        bad = "http://radicale.org/ns/sync/" + "0" * 64  # a token this server never issued
    with pytest.raises(InvalidSyncStateError, match="sync"):
        harness.backend.changes(alice, bad, max_changes=50)


def test_wrong_password_is_credentials_rejected(harness: Any) -> None:
    backend = harness.new_backend("not-the-password")
    try:
        with pytest.raises(CredentialsRejectedError, match="often expired"):
            backend.changes(harness.mailbox("alice"), None, max_changes=10)
    finally:
        backend.close()


def test_unknown_mailbox_is_mailbox_not_found(harness: Any) -> None:
    ghost = "nobody@contoso.test" if harness.kind == "ews" else "nobody-x@contoso.test"
    with pytest.raises(MailboxNotFoundError, match="nobody"):
        harness.backend.changes(ghost, None, max_changes=10)
