"""The Graph backend's calendar sync against the Graph emulator over real TLS, beyond the
shared contract suite: paging, delta-token loss, the calendar-view window, series folding
and deletion, time zones across DST, HTML bodies, concurrent edits, automatic replies."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from synckit import DETAILS, START, Clock, drain

from hybridge.calendar.errors import (
    InvalidSyncStateError,
)
from hybridge.calendar.graph import GraphBackend
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.model import Recurrence
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import MailboxState, SyncEngine
from hybridge.core.meetings import BEGIN_MARKER
from hybridge.testing.graph import (
    AutomaticReplies,
    Pattern,
)

# -- delta: paging, tokens, series ------------------------------------------------------------


def test_paging_follows_next_links_across_several_pages(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    ids = {graph_harness.add(alice, f"M{i}", start=START + dt.timedelta(days=i)) for i in range(7)}
    changes, state, pages = drain(backend, alice, size=3)
    assert pages == 3  # 3 + 3 + 1
    assert {c.meeting_id for c in changes} == ids and len(changes) == 7
    links = json.loads(state)["link"]
    assert "$deltatoken=" in links
    deltas = [p for m, p in emulator.requests if m == "GET" and "calendarView" in p]
    assert len(deltas) == 3
    # A change made after the round: exactly that change comes next.
    first = sorted(ids)[0]
    graph_harness.set_subject(alice, first, "renamed")
    later, _, _ = drain(backend, alice, state, size=3)
    assert [(c.kind, c.meeting_id, c.meeting.subject) for c in later] == [
        ("upsert", first, "renamed")
    ]


def test_a_page_state_is_a_resumable_next_link(graph_harness: Any) -> None:
    backend = graph_harness.backend
    alice = graph_harness.mailbox("alice")
    for i in range(4):
        graph_harness.add(alice, f"M{i}", start=START + dt.timedelta(days=i))
    first = backend.changes(alice, None, max_changes=2)
    assert first.more and "$skiptoken=" in json.loads(first.state)["link"]
    # The same page state asked twice (a restart) gives the same next page.
    again1 = backend.changes(alice, first.state, max_changes=2)
    again2 = backend.changes(alice, first.state, max_changes=2)
    assert [c.meeting_id for c in again1.changes] == [c.meeting_id for c in again2.changes]


def test_invalid_delta_token_resyncs_that_mailbox(
    graph_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    emulator = graph_harness.emulator
    alice = graph_harness.mailbox("alice")
    a1 = graph_harness.add(alice, "A1", start=START)
    a2 = graph_harness.add(alice, "A2", start=START + dt.timedelta(days=1))
    _, state, _ = drain(graph_harness.backend, alice)
    emulator.invalidate_delta_tokens(alice)
    with pytest.raises(InvalidSyncStateError, match=r"410 syncStateNotFound"):
        graph_harness.backend.changes(alice, state, max_changes=10)
    engine = SyncEngine(graph_harness.backend, state_store, cloud, clock=Clock())
    try:
        state_store.save(alice, state)  # the lost token, as persisted before
        graph_harness.remove(alice, a2)
        engine.set_mailboxes([alice])
        [outcome] = engine.run_due()
        assert outcome.resynced and outcome.state is MailboxState.IDLE
        assert set(cloud.meetings(alice)) == {a1}
    finally:
        engine.close()


def test_state_of_another_backend_is_an_invalid_sync_state(graph_harness: Any) -> None:
    with pytest.raises(InvalidSyncStateError, match="not a Graph delta state"):
        graph_harness.backend.changes("alice@contoso.test", "H4sIAAAA", max_changes=10)


def test_window_moves_forward_by_a_resync(graph_harness: Any) -> None:
    settings = graph_harness.backend.settings
    now = [dt.datetime(2026, 12, 1, tzinfo=dt.UTC)]
    backend = GraphBackend(settings, ssl_context=graph_harness.context, clock=lambda: now[0])
    try:
        _, state, _ = drain(backend, "alice@contoso.test")
        assert json.loads(state)["window_end"] == "2027-12-01"
        now[0] += dt.timedelta(days=182)  # under half of the 365-day future has passed
        drain(backend, "alice@contoso.test", state)
        now[0] += dt.timedelta(days=2)  # now more than half
        with pytest.raises(InvalidSyncStateError, match="move the window forward"):
            backend.changes("alice@contoso.test", state, max_changes=10)
    finally:
        backend.close()


def test_series_occurrences_fold_into_one_meeting_and_its_deletion_is_seen(
    graph_harness: Any,
) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    series = emulator.add_event(
        alice,
        "Daily stand-up",
        start=START,
        end=START + dt.timedelta(minutes=15),
        time_zone="Europe/Berlin",
        pattern=Pattern("daily", 1, count=10),
    )
    changes, state, pages = drain(backend, alice, size=4)
    assert pages == 3  # ten occurrences in pages of four ...
    upserts = [c for c in changes if c.kind == "upsert"]
    assert {c.meeting_id for c in upserts} == {series}  # ... one meeting
    assert upserts[0].meeting.recurrence == Recurrence("DAILY", 1, (), 10)
    emulator.delete_event(series)
    later, _, _ = drain(backend, alice, state)
    assert ("delete", series) in [(c.kind, c.meeting_id) for c in later]


def test_series_known_before_a_restart_is_still_deleted(graph_harness: Any) -> None:
    emulator = graph_harness.emulator
    alice = graph_harness.mailbox("alice")
    series = emulator.add_event(
        alice,
        "Weekly",
        start=START,
        end=START + dt.timedelta(hours=1),
        pattern=Pattern("weekly", 1, ("monday",)),
    )
    _, state, _ = drain(graph_harness.backend, alice)
    fresh = graph_harness.new_backend()  # a restarted connector: only the state survives
    try:
        emulator.delete_event(series)
        later, _, _ = drain(fresh, alice, state)
        assert ("delete", series) in [(c.kind, c.meeting_id) for c in later]
    finally:
        fresh.close()


# -- time zones -------------------------------------------------------------------------------


def test_weekly_series_in_windows_zone_keeps_local_time_across_both_dst_changes(
    graph_harness: Any,
) -> None:
    emulator = graph_harness.emulator
    alice = graph_harness.mailbox("alice")
    # Tuesdays 09:00 in Seattle, from 2 March 2027: US DST starts 14 March, Europe's 28 March.
    first = dt.datetime(2027, 3, 2, 17, 0, tzinfo=dt.UTC)  # 09:00 PST
    mid = emulator.add_event(
        alice,
        "Pacific sync",
        start=first,
        end=first + dt.timedelta(minutes=30),
        time_zone="America/Los_Angeles",
        pattern=Pattern("weekly", 1, ("tuesday",)),
    )
    [meeting] = [c.meeting for c in drain(graph_harness.backend, alice)[0] if c.kind == "upsert"]
    assert meeting.meeting_id == mid
    # Graph said "Pacific Standard Time" (a Windows name); the model says IANA.
    assert meeting.start_tz == "America/Los_Angeles"
    starts = meeting.occurrence_starts(3)
    assert [s.hour for s in starts] == [9, 9, 9]
    assert [s.astimezone(dt.UTC).hour for s in starts] == [17, 17, 16]  # PST, PST, PDT


def test_event_json_carries_the_windows_zone_and_utc_instants(graph_harness: Any) -> None:
    emulator = graph_harness.emulator
    alice = graph_harness.mailbox("alice")
    summer = dt.datetime(2027, 7, 5, 8, 0, tzinfo=dt.UTC)  # 10:00 CEST
    mid = emulator.add_event(
        alice, "Summer", start=summer, end=summer + dt.timedelta(hours=1), time_zone="Europe/Berlin"
    )
    meeting = graph_harness.backend.read(alice, mid)
    assert meeting.start_tz == "Europe/Berlin"
    assert meeting.start.hour == 10 and meeting.start.utcoffset() == dt.timedelta(hours=2)
    assert meeting.start == summer


# -- bodies and automatic replies -------------------------------------------------------------


def test_html_body_gets_one_block_and_loses_it_again(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    html = "<html><body><p>Agenda @webex</p></body></html>"
    mid = emulator.add_event(
        alice, "Html", start=START, end=START + dt.timedelta(hours=1), body=html, body_type="html"
    )
    assert backend.write_join_details(alice, mid, DETAILS) == "written"
    stored = emulator.event(mid)
    assert stored.body_type == "html" and stored.body.count(BEGIN_MARKER) == 1
    assert stored.body.index(BEGIN_MARKER) < stored.body.index("</body>")
    assert backend.write_join_details(alice, mid, DETAILS) == "unchanged"
    assert backend.write_join_details(alice, mid, None) == "written"
    assert emulator.event(mid).body == html


def test_concurrent_edit_is_merged_not_overwritten(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    mid = graph_harness.add(alice, "Race @webex", body="v1", start=START)
    patches: list[str] = []

    def organizer_saves_first(method: str, path: str) -> None:
        # The organizer saves a new body between our GET and our first PATCH.
        if method == "PATCH":
            patches.append(path)
            if len(patches) == 1:
                emulator.update_event(mid, body="v2 by the organizer")

    emulator.on_request = organizer_saves_first
    assert backend.write_join_details(alice, mid, DETAILS) == "written"
    assert len(patches) == 2  # 412 on the stale ETag, then a merge over v2
    body = emulator.event(mid).body
    assert body.startswith("v2 by the organizer") and body.count(BEGIN_MARKER) == 1


def test_stale_if_match_is_refused_by_the_emulator(graph_harness: Any) -> None:
    # The rejecting twin of the merge above, at the HTTP level.
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    mid = graph_harness.add(alice, "x", start=START)
    client = backend._client
    url = f"{emulator.graph_url}/users/{alice}/events/{mid}"
    etag = client.request("GET", url, mailbox=alice, what="e").json()["@odata.etag"]
    graph_harness.set_subject(alice, mid, "changed meanwhile")
    response = client.request(
        "PATCH", url, mailbox=alice, what="e", headers={"If-Match": etag}, json={"subject": "y"}
    )
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "ErrorIrresolvableConflict"
    assert emulator.event(mid).subject == "changed meanwhile"


def test_out_of_office_states(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice, bob, carol = (graph_harness.mailbox(n) for n in ("alice", "bob", "carol"))
    emulator.set_automatic_replies(alice, AutomaticReplies("alwaysEnabled", "Away"))
    emulator.set_automatic_replies(
        bob, AutomaticReplies("scheduled", "Holiday", START, START + dt.timedelta(days=7))
    )
    at = START + dt.timedelta(days=1)
    assert backend.out_of_office(alice, at).state == "enabled"
    assert backend.out_of_office(alice, at).reply == "Away"
    scheduled = backend.out_of_office(bob, at)
    assert scheduled.state == "scheduled" and scheduled.active and scheduled.start == START
    assert not backend.out_of_office(bob, START + dt.timedelta(days=8)).active
    assert backend.out_of_office(carol, at).state == "disabled"


def test_keyword_series_gets_join_details_once_in_its_master(
    graph_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    emulator = graph_harness.emulator
    alice = graph_harness.mailbox("alice")
    series = emulator.add_event(
        alice,
        "Team sync @webex",
        start=START,
        end=START + dt.timedelta(minutes=30),
        time_zone="Europe/Berlin",
        body="Weekly notes",
        pattern=Pattern("weekly", 1, ("monday", "thursday"), count=8),
    )
    engine = SyncEngine(graph_harness.backend, state_store, cloud, clock=Clock(), page_size=3)
    try:
        engine.set_mailboxes([alice])
        [first] = engine.run_due()
        assert first.state is MailboxState.IDLE and first.joins_written == 1
        assert set(cloud.meetings(alice)) == {series}  # one meeting, not eight occurrences
        # Our own write changed the master: the next sync sees it and writes nothing.
        again = engine.sync_mailbox(alice)
        assert again.joins_written == 0
        body = emulator.event(series).body
        assert body.startswith("Weekly notes") and body.count(BEGIN_MARKER) == 1
    finally:
        engine.close()
