"""The sync engine against real servers (EWS emulator, Radicale), a real node database and
the SQLite stand-in for the cloud: join details exactly once, restarts, removals,
resyncs, throttling, 401 and impersonation denial, streaming notifications."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from synckit import START, Clock

from hybridge.calendar.ews.streaming import EwsStreamingNotifier
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.model import Meeting
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import Alarm, MailboxState, SyncEngine
from hybridge.core.meetings import BEGIN_MARKER, JoinDetails
from hybridge.testing.ews import OofSettings, ThrottlePolicy


def make_engine(harness: Any, store: SyncStateStore, cloud: Any, **kw: Any) -> SyncEngine:
    kw.setdefault("clock", Clock())
    return SyncEngine(harness.backend, store, cloud, **kw)


def test_keyword_meeting_gets_join_details_exactly_once(
    harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    alice = harness.mailbox("alice")
    with_kw = harness.add(alice, "Design @webex:onetime", body="My agenda", start=START)
    plain = harness.add(alice, "Lunch", body="no keyword", start=START + dt.timedelta(hours=3))
    engine = make_engine(harness, state_store, cloud)
    try:
        engine.set_mailboxes([alice])
        [first] = engine.run_due()
        assert first.state is MailboxState.IDLE and first.joins_written == 1
        body = harness.body(alice, with_kw)
        assert body.startswith("My agenda") and body.count(BEGIN_MARKER) == 1
        assert BEGIN_MARKER not in harness.body(alice, plain)
        assert set(cloud.meetings(alice)) == {with_kw, plain}
        assert cloud.meetings(alice)[with_kw]["keyword"] == "@webex:onetime"
        # Our own write comes back as a change: seen, and nothing written again.
        second = engine.sync_mailbox(alice)
        assert second.joins_written == 0
        assert harness.body(alice, with_kw) == body
        # The keyword moves into the body of the other meeting (any case): details added.
        harness.set_body(alice, plain, "see you there @MEET")
        # The keyword is removed from the first: its details go.
        harness.set_subject(alice, with_kw, "Design")
        third = engine.sync_mailbox(alice)
        assert third.joins_written == 2
        assert BEGIN_MARKER not in harness.body(alice, with_kw)
        assert harness.body(alice, with_kw).strip() == "My agenda"
        assert harness.body(alice, plain).count(BEGIN_MARKER) == 1
        assert cloud.meetings(alice)[with_kw]["keyword"] is None
        assert engine.sync_mailbox(alice).joins_written == 0
    finally:
        engine.close()


def test_attendee_copy_is_never_edited(
    harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    bob = harness.mailbox("bob")
    copy = harness.add(
        bob, "Invite @webex", body="from alice", start=START, organizer="alice@contoso.test"
    )
    engine = make_engine(harness, state_store, cloud)
    try:
        engine.set_mailboxes([bob])
        [outcome] = engine.run_due()
        assert outcome.upserts == 1 and outcome.joins_written == 0
        assert BEGIN_MARKER not in harness.body(bob, copy)
    finally:
        engine.close()


class CrashingCloud(LocalCalendarService):
    """The real local service, with the process "dying" after ``crash_after`` deliveries."""

    crash_after = 4

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        if self.crash_after == 0:
            raise SystemExit("simulated crash")
        self.crash_after -= 1
        return super().meeting_changed(meeting)


def test_restart_in_the_middle_of_a_sync_misses_and_duplicates_nothing(
    harness: Any, state_store: SyncStateStore, tmp_path: Path
) -> None:
    alice = harness.mailbox("alice")
    ids = {harness.add(alice, f"M{i}", start=START + dt.timedelta(days=i)) for i in range(7)}
    crashing = CrashingCloud(tmp_path / "cloud.sqlite")
    engine = make_engine(harness, state_store, crashing, page_size=3)
    engine.set_mailboxes([alice])
    with pytest.raises(SystemExit, match="simulated crash"):
        engine.sync_mailbox(alice)
    engine.close()
    crashing.close()
    # Changes made while the connector was down.
    late = harness.add(alice, "Late", start=START + dt.timedelta(days=30))
    gone = sorted(ids)[0]
    harness.remove(alice, gone)
    # "Restart": new objects over the same database files.
    cloud = LocalCalendarService(tmp_path / "cloud.sqlite")
    engine = make_engine(harness, state_store, cloud, page_size=3)
    try:
        engine.set_mailboxes([alice])
        [outcome] = engine.run_due()
        assert outcome.state is MailboxState.IDLE
        assert set(cloud.meetings(alice)) == (ids | {late}) - {gone}
        counts: dict[str, int] = {}
        for kind, _, mid, _ in cloud.deliveries(alice):
            if kind == "upsert":
                counts[mid] = counts.get(mid, 0) + 1
        # At most the page in flight is seen twice; never more.
        assert max(counts.values()) <= 2
        redelivered = sum(1 for c in counts.values() if c == 2)
        assert redelivered <= (3 if harness.kind == "ews" else 7)
    finally:
        engine.close()
        cloud.close()


class GatedCloud(LocalCalendarService):
    """Holds the first delivery until the test says go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.go = threading.Event()

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        self.entered.set()
        assert self.go.wait(10)
        return super().meeting_changed(meeting)


def test_user_removed_while_a_sync_is_in_flight(
    harness: Any, state_store: SyncStateStore, tmp_path: Path
) -> None:
    alice = harness.mailbox("alice")
    for i in range(4):
        harness.add(alice, f"M{i} @webex", start=START + dt.timedelta(days=i))
    cloud = GatedCloud(tmp_path / "cloud.sqlite")
    cloud.enable(alice)
    engine = make_engine(harness, state_store, cloud)
    assert engine.apply_users(cloud) == ([alice], [])
    outcomes: list[Any] = []
    syncing = threading.Thread(target=lambda: outcomes.append(engine.sync_mailbox(alice)))
    syncing.start()
    try:
        assert cloud.entered.wait(10)
        cloud.disable(alice)  # the admin disables the user in the portal
        removing = threading.Thread(target=engine.apply_users, args=(cloud,))
        removing.start()
        time.sleep(0.1)  # remove() is now waiting for the in-flight delivery
        cloud.go.set()
        syncing.join(10)
        removing.join(10)
        assert outcomes[0].state is MailboxState.REMOVED
        # The delivery in flight completes; nothing after it, and no write-back.
        assert outcomes[0].upserts <= 1 and outcomes[0].joins_written == 0
        assert len(cloud.deliveries(alice)) <= 1
        assert cloud.meetings(alice) == {}
        assert state_store.mailboxes() == []
        assert engine.state_of(alice)[0] is MailboxState.REMOVED
        assert engine.mailboxes() == []
    finally:
        cloud.go.set()
        engine.close()
        cloud.close()


def test_invalid_sync_state_resyncs_that_mailbox_only(
    harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    alice, bob = harness.mailbox("alice"), harness.mailbox("bob")
    a1 = harness.add(alice, "A1", start=START)
    a2 = harness.add(alice, "A2", start=START + dt.timedelta(days=1))
    harness.add(bob, "B1", start=START)
    engine = make_engine(harness, state_store, cloud)
    try:
        engine.set_mailboxes([alice, bob])
        engine.run_due()
        bob_state = state_store.load(bob).sync_state
        bob_deliveries = len(cloud.deliveries(bob))
        if harness.kind == "ews":
            harness.emulator.store.invalidate_sync_states(alice)
        else:
            state_store.save(alice, "http://radicale.org/ns/sync/" + "f" * 64)
        harness.remove(alice, a2)  # deleted while our state is unusable
        a3 = harness.add(alice, "A3", start=START + dt.timedelta(days=2))
        alice_outcome = engine.sync_mailbox(alice)
        bob_outcome = engine.sync_mailbox(bob)
        assert alice_outcome.resynced and alice_outcome.state is MailboxState.IDLE
        assert set(cloud.meetings(alice)) == {a1, a3}  # the deletion is not missed
        assert not bob_outcome.resynced
        assert state_store.load(bob).sync_state == bob_state
        assert len(cloud.deliveries(bob)) == bob_deliveries
        assert not state_store.load(alice).resyncing
    finally:
        engine.close()


@pytest.mark.parametrize("style", ["fault", "http503"])
def test_throttled_mailbox_does_not_stall_the_others(
    ews_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService, style: str
) -> None:
    harness = ews_harness
    alice, bob = harness.mailbox("alice"), harness.mailbox("bob")
    harness.add(alice, "A", start=START)
    harness.add(bob, "B", start=START)
    harness.emulator.directory.set_throttle(
        bob, ThrottlePolicy(after_requests=0, back_off_ms=30_000, busy_responses=0, style=style)
    )
    clock = Clock()
    engine = make_engine(harness, state_store, cloud, clock=clock)
    try:
        engine.set_mailboxes([alice, bob])
        began = time.monotonic()
        outcomes = {o.mailbox: o for o in engine.run_due()}
        assert time.monotonic() - began < 5  # nobody slept through bob's 30 s
        assert outcomes[alice].state is MailboxState.IDLE and outcomes[alice].upserts == 1
        assert outcomes[bob].state is MailboxState.BACKOFF
        assert "wait 30 s" in outcomes[bob].reason
        assert engine.due() == []  # bob waits his 30 s, alice her poll interval
        clock.now += 31
        assert engine.due() == [bob]
        harness.emulator.directory.set_throttle(bob, None)
        [again] = engine.run_due()
        assert again.mailbox == bob and again.state is MailboxState.IDLE
        assert len(cloud.meetings(bob)) == 1
    finally:
        engine.close()


def test_rejected_password_pauses_the_configuration_with_an_alarm(
    harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    alice, bob = harness.mailbox("alice"), harness.mailbox("bob")
    harness.add(alice, "A", start=START)
    raised: list[Alarm] = []
    wrong = harness.new_backend("expired-password")
    engine = SyncEngine(wrong, state_store, cloud, clock=Clock(), on_alarm=raised.append)
    try:
        engine.set_mailboxes([alice, bob])
        engine.run_due()
        assert engine.paused
        assert engine.state_of(alice)[0] is MailboxState.PAUSED
        assert engine.state_of(bob)[0] is MailboxState.PAUSED
        assert len(raised) == 1 and raised[0].code == "impersonation_password_rejected"
        assert "password rejected (often expired)" in raised[0].message
        assert engine.due() == []  # nothing retries with the bad password
        engine.resume(harness.new_backend())
        outcomes = {o.mailbox: o.state for o in engine.run_due()}
        assert outcomes == {alice: MailboxState.IDLE, bob: MailboxState.IDLE}
        assert len(cloud.meetings(alice)) == 1
    finally:
        engine.close()
        wrong.close()


def test_impersonation_denied_puts_only_that_user_in_error(
    ews_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    harness = ews_harness
    alice, carol = harness.mailbox("alice"), harness.mailbox("carol")
    harness.add(alice, "A", start=START)
    harness.add(carol, "C", start=START)
    directory = harness.emulator.directory
    directory.revoke_impersonation("svc-hybridge")
    directory.grant_impersonation("svc-hybridge", frozenset({alice}))
    clock = Clock()
    engine = make_engine(harness, state_store, cloud, clock=clock, error_retry=600)
    try:
        engine.set_mailboxes([alice, carol])
        outcomes = {o.mailbox: o for o in engine.run_due()}
        assert outcomes[alice].state is MailboxState.IDLE
        assert outcomes[carol].state is MailboxState.ERROR
        assert "ErrorImpersonateUserDenied" in outcomes[carol].reason
        status = cloud.status_of(carol)
        assert status is not None and status[0] == "error"
        assert "ErrorImpersonateUserDenied" in status[1]
        assert state_store.load(carol).status == "error"
        assert cloud.status_of(alice) is None
        # The admin widens the scope; at the next retry carol recovers.
        directory.grant_impersonation("svc-hybridge", frozenset({carol}))
        clock.now += 601
        again = {o.mailbox: o for o in engine.run_due()}[carol]
        assert again.state is MailboxState.IDLE
        assert cloud.status_of(carol) == ("ok", "")
        assert len(cloud.meetings(carol)) == 1
    finally:
        engine.close()


def test_missing_calendar_puts_only_that_user_in_error(
    caldav_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    harness = caldav_harness
    alice = harness.mailbox("alice")
    ghost = "ghost-" + harness.run + "@contoso.test"
    engine = make_engine(harness, state_store, cloud)
    try:
        engine.set_mailboxes([alice, ghost])
        outcomes = {o.mailbox: o for o in engine.run_due()}
        assert outcomes[alice].state is MailboxState.IDLE
        assert outcomes[ghost].state is MailboxState.ERROR
        assert "no calendar for" in outcomes[ghost].reason
    finally:
        engine.close()


def test_streaming_groups_mailboxes_renews_and_triggers_sync(
    ews_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    harness = ews_harness
    boxes = [harness.mailbox(u) for u in ("alice", "bob", "carol")]
    # A long poll interval: only notifications can make the engine see a change quickly.
    engine = SyncEngine(harness.backend, state_store, cloud, poll_interval=3600)
    notifier = EwsStreamingNotifier(
        harness.backend, group_size=2, connection_minutes=1, retry_seconds=0.2
    )
    stop = threading.Event()
    runner = threading.Thread(target=engine.run_forever, args=(stop,), kwargs={"max_wait": 0.1})
    try:
        engine.set_mailboxes(boxes)
        engine.run_due()
        reported: list[str] = []

        def on_change(mailbox: str) -> None:
            reported.append(mailbox)
            engine.notify(mailbox)

        notifier.watch(boxes, on_change)
        assert notifier.groups == [tuple(boxes[:2]), tuple(boxes[2:])]
        runner.start()
        time.sleep(0.3)  # subscriptions in place
        began = time.monotonic()
        mid = harness.add(boxes[2], "Pushed", start=START)
        deadline = time.monotonic() + 5
        while mid not in cloud.meetings(boxes[2]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mid in cloud.meetings(boxes[2]), "change not seen within 5 s"
        assert time.monotonic() - began < 3
        # The emulator's "minute" is 1 s: each group's connection is renewed.
        deadline = time.monotonic() + 6
        while notifier.connections_opened < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert notifier.connections_opened >= 4
        # Renewals keep their subscriptions: bob, never changed, was reported only once
        # (the catch-up of his new subscription), not once per connection.
        assert reported.count(boxes[1]) == 1, reported
        # A change after a renewal is still seen.
        mid2 = harness.add(boxes[0], "After renewal", start=START)
        deadline = time.monotonic() + 5
        while mid2 not in cloud.meetings(boxes[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mid2 in cloud.meetings(boxes[0])
    finally:
        stop.set()
        notifier.stop()
        runner.join(5)
        engine.close()


def test_out_of_office_is_read_per_user(ews_harness: Any, caldav_harness: Any) -> None:
    alice = ews_harness.mailbox("alice")
    begin = dt.datetime(2027, 7, 1, tzinfo=dt.UTC)
    ews_harness.emulator.store.set_oof(
        alice,
        OofSettings(
            state="Scheduled",
            internal_reply="On holiday",
            start=begin,
            end=begin + dt.timedelta(days=14),
        ),
    )
    during = ews_harness.backend.out_of_office(alice, begin + dt.timedelta(days=1))
    after = ews_harness.backend.out_of_office(alice, begin + dt.timedelta(days=20))
    assert during.state == "scheduled" and during.active and "On holiday" in during.reply
    assert after.state == "scheduled" and not after.active
    assert ews_harness.backend.out_of_office("bob@contoso.test", begin).state == "disabled"
    caldav_oof = caldav_harness.backend.out_of_office(caldav_harness.mailbox("alice"), begin)
    assert caldav_oof.state == "unsupported" and not caldav_oof.active


def test_html_body_gets_one_block_before_body_close(ews_harness: Any) -> None:
    from hybridge.testing.ews.soap import T, el

    harness = ews_harness
    alice = harness.mailbox("alice")
    mid = harness.add(alice, "HTML @webex", start=START)
    html = "<html><body><p>Agenda &amp; notes</p></body></html>"
    item = harness.emulator.store.item(mid)
    harness.emulator.store.update_item(item, {"Body": el(T, "Body", html, BodyType="HTML")})
    details = JoinDetails("https://meet.example.com/j/h")
    assert harness.backend.write_join_details(alice, mid, details) == "written"
    assert harness.backend.write_join_details(alice, mid, details) == "unchanged"
    stored = harness.emulator.store.item(mid).props["Body"]
    assert stored.get("BodyType") == "HTML"
    body = stored.text or ""
    assert body.count(BEGIN_MARKER) == 1 and body.index(BEGIN_MARKER) < body.index("</body>")
    assert "<p>Agenda &amp; notes</p>" in body
    meeting = harness.backend.read(alice, mid)
    assert meeting.body_type == "HTML" and meeting.has_join_details
    assert harness.backend.write_join_details(alice, mid, None) == "written"
    assert harness.emulator.store.item(mid).props["Body"].text == html


def test_restart_during_a_resync_starts_the_resync_over(
    ews_harness: Any, state_store: SyncStateStore, tmp_path: Path
) -> None:
    harness = ews_harness
    alice = harness.mailbox("alice")
    ids = [harness.add(alice, f"M{i}", start=START + dt.timedelta(days=i)) for i in range(6)]
    cloud = LocalCalendarService(tmp_path / "cloud.sqlite")
    engine = make_engine(harness, state_store, cloud, page_size=2)
    engine.set_mailboxes([alice])
    engine.run_due()
    engine.close()
    cloud.close()
    harness.emulator.store.invalidate_sync_states(alice)
    harness.remove(alice, ids[5])  # deleted while the state is unusable
    crashing = CrashingCloud(tmp_path / "cloud.sqlite")
    crashing.crash_after = 3  # dies after the first resync page and a half
    engine = make_engine(harness, state_store, crashing, page_size=2)
    engine.set_mailboxes([alice])
    with pytest.raises(SystemExit, match="simulated crash"):
        engine.sync_mailbox(alice)
    engine.close()
    crashing.close()
    row = state_store.load(alice)
    assert row.resyncing and row.sync_state is not None  # a page of the resync was saved
    cloud = LocalCalendarService(tmp_path / "cloud.sqlite")
    engine = make_engine(harness, state_store, cloud, page_size=2)
    try:
        engine.set_mailboxes([alice])
        [outcome] = engine.run_due()
        assert outcome.resynced and outcome.state is MailboxState.IDLE
        # Starting over from scratch is what makes retain_only see every meeting.
        assert set(cloud.meetings(alice)) == set(ids[:5])
        assert not state_store.load(alice).resyncing
    finally:
        engine.close()
        cloud.close()


def test_the_run_loop_hands_each_due_mailbox_out_once_and_only_when_due(
    harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    """The run loop's timer heap (no scan of every mailbox per wake-up) agrees with the
    full scan of ``due()``: each due mailbox once, a stale timer skipped, a later one kept."""
    alice, bob = harness.mailbox("alice"), harness.mailbox("bob")
    clock = Clock()
    engine = make_engine(harness, state_store, cloud, clock=clock, poll_interval=300)
    try:
        engine.set_mailboxes([alice, bob])
        engine.notify(alice)  # a second timer for a mailbox that is already due
        assert sorted(engine.due()) == sorted([alice, bob])
        popped = engine._pop_due()
        assert sorted(popped) == sorted([alice, bob])
        assert engine._pop_due() == []  # claimed: never handed out twice
        for mailbox in popped:
            assert engine._submit(mailbox).result().state is MailboxState.IDLE
        assert engine._pop_due() == [] and engine.due() == []
        clock.now += 100
        engine.notify(bob)  # a change: bob is due now, alice at her next poll
        assert engine._pop_due() == [bob]
        engine._submit(bob).result()
        clock.now += 199
        assert engine._pop_due() == []  # alice's poll is one second away; bob's stale timer
        clock.now += 1
        assert engine._pop_due() == [alice]
        engine._submit(alice).result()
        clock.now += 99
        assert engine._pop_due() == []  # bob's first poll timer was replaced by his resync
        clock.now += 2
        assert engine._pop_due() == [bob]
    finally:
        engine.close()
