"""Recurring series through the Graph emulator over real TLS and msal: every pattern type
round-trips into the model's rule, occurrence for occurrence (daily, weekly, absolute and
relative monthly and yearly, a week start that matters), exceptions
and cancelled occurrences arrive as their own changes, and a weekly series in a Windows
zone keeps its wall-clock time across DST."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from synckit import DETAILS, Clock, drain

from hybridge.calendar.graph import GraphBackend
from hybridge.calendar.graph.mapping import parse_date_time
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.model import Meeting, Recurrence
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import MailboxState, SyncEngine
from hybridge.core.meetings import BEGIN_MARKER
from hybridge.testing.graph import GraphEmulator, Pattern

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
#: The backend's calendar view with the clock at NOW: 30 days back, five years ahead.
WINDOW = (dt.datetime(2026, 12, 2, tzinfo=dt.UTC), dt.datetime(2031, 12, 31, tzinfo=dt.UTC))
ALICE = "alice@contoso.test"


@pytest.fixture
def backend(graph_harness: Any) -> Iterator[GraphBackend]:
    settings = dataclasses.replace(graph_harness.backend.settings, window_future_days=1825)
    b = GraphBackend(settings, ssl_context=graph_harness.context, clock=lambda: NOW)
    yield b
    b.close()


def instance_starts(backend: GraphBackend, emulator: GraphEmulator, master: str) -> list[Any]:
    """The series' instance starts (UTC) as Graph's calendarView/delta lists them."""
    query = urlencode(
        {
            "startDateTime": f"{WINDOW[0]:%Y-%m-%dT%H:%M:%SZ}",
            "endDateTime": f"{WINDOW[1]:%Y-%m-%dT%H:%M:%SZ}",
        }
    )
    url: str | None = f"{emulator.graph_url}/users/{ALICE}/calendarView/delta?{query}"
    starts = []
    while url:
        page = backend._client.request("GET", url, mailbox=ALICE, what="delta").json()
        starts += [
            parse_date_time(i["start"]) for i in page["value"] if i.get("seriesMasterId") == master
        ]
        url = page.get("@odata.nextLink")
    assert starts, "the emulator listed no instance"
    return sorted(starts)


def series(emulator: GraphEmulator, pattern: Pattern, local_start: dt.datetime, zone: str) -> str:
    start = local_start.replace(tzinfo=ZoneInfo(zone))
    return emulator.add_event(
        ALICE,
        "Series @webex",
        start=start,
        end=start + dt.timedelta(minutes=45),
        time_zone=zone,
        pattern=pattern,
    )


def the_meeting(backend: GraphBackend, master: str) -> Meeting:
    changes, _, _ = drain(backend, ALICE, size=100)
    # Once, even when its occurrences fill several pages.
    [meeting] = [c.meeting for c in changes if c.meeting_id == master and c.meeting]
    return meeting


MAPPED = [
    pytest.param(
        Pattern("daily", 1, count=15),
        dt.datetime(2027, 3, 20, 9),
        "Europe/Berlin",
        Recurrence("DAILY", 1, (), 15),
        id="daily-numbered-across-dst",
    ),
    pytest.param(
        Pattern("daily", 3, count=10),
        dt.datetime(2027, 3, 20, 9),
        "Europe/Berlin",
        Recurrence("DAILY", 3, (), 10),
        id="every-3-days",
    ),
    pytest.param(
        Pattern(
            "weekly",
            2,
            ("monday", "wednesday"),
            end_date=dt.date(2027, 6, 30),
            first_day_of_week="monday",
        ),
        dt.datetime(2027, 2, 1, 8, 30),
        "America/New_York",
        Recurrence("WEEKLY", 2, ("MO", "WE"), until=dt.date(2027, 6, 30)),
        id="weekly-end-date",
    ),
    pytest.param(
        Pattern("weekly", 1, ("tuesday", "thursday")),
        dt.datetime(2027, 2, 2, 10),
        "Europe/Berlin",
        Recurrence("WEEKLY", 1, ("TU", "TH")),
        id="weekly-no-end",
    ),
    pytest.param(
        Pattern("weekly", 2, ("wednesday", "friday"), count=12),
        dt.datetime(2027, 2, 3, 16),
        "Asia/Tokyo",
        Recurrence("WEEKLY", 2, ("WE", "FR"), 12),
        id="biweekly-sunday-weeks",
    ),
]


@pytest.mark.parametrize(("pattern", "local_start", "zone", "rule"), MAPPED)
def test_daily_and_weekly_series_round_trip_occurrence_for_occurrence(
    graph_harness: Any,
    backend: GraphBackend,
    pattern: Pattern,
    local_start: dt.datetime,
    zone: str,
    rule: Recurrence,
) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, pattern, local_start, zone)
    meeting = the_meeting(backend, master)
    assert meeting.recurrence == rule and meeting.start_tz == zone
    assert backend.unmapped(ALICE) == {}
    graph = instance_starts(backend, emulator, master)
    model = [s for s in meeting.occurrence_starts(len(graph) + 50) if s < WINDOW[1]]
    assert model == graph


#: Patterns the model could not carry before it had monthly/yearly rules and WKST.
UNMAPPED = [
    pytest.param(
        Pattern("absoluteMonthly", 1, count=8, day_of_month=31),
        dt.datetime(2027, 1, 31, 9),
        "Europe/Berlin",
        "FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1;COUNT=8",
        dt.date(2027, 2, 28),
        id="absolute-monthly-31st",
    ),
    pytest.param(
        Pattern(
            "relativeMonthly", 1, ("thursday",), end_date=dt.date(2027, 12, 31), index="second"
        ),
        dt.datetime(2027, 2, 11, 14),
        "America/Los_Angeles",
        "FREQ=MONTHLY;BYDAY=TH;BYSETPOS=2;UNTIL=20280101T075959Z",
        dt.date(2027, 3, 11),
        id="relative-monthly-second-thursday",
    ),
    pytest.param(
        Pattern("relativeMonthly", 2, ("saturday", "sunday"), index="second"),
        dt.datetime(2027, 2, 6, 10),
        "Europe/London",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=SA,SU;BYSETPOS=2",
        dt.date(2027, 8, 7),
        id="relative-monthly-second-weekend-day",
    ),
    pytest.param(
        Pattern(
            "relativeMonthly",
            1,
            ("monday", "tuesday", "wednesday", "thursday", "friday"),
            count=6,
            index="last",
        ),
        dt.datetime(2027, 1, 29, 17),
        "Europe/Berlin",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6",
        dt.date(2027, 2, 26),
        id="relative-monthly-last-weekday",
    ),
    pytest.param(
        Pattern("absoluteYearly", 1, count=4, day_of_month=29, month=2),
        dt.datetime(2028, 2, 29, 9),
        "Europe/Berlin",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=4",
        dt.date(2029, 2, 28),
        id="absolute-yearly-29-february",
    ),
    pytest.param(
        Pattern("relativeYearly", 1, ("thursday",), count=3, month=11, index="fourth"),
        dt.datetime(2027, 11, 25, 12),
        "America/New_York",
        "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4;COUNT=3",
        dt.date(2028, 11, 23),
        id="relative-yearly-thanksgiving",
    ),
    pytest.param(
        Pattern("weekly", 2, ("sunday", "monday"), count=8),
        dt.datetime(2027, 1, 3, 9),
        "Europe/Berlin",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU;WKST=SU;COUNT=8",
        dt.date(2027, 1, 4),
        id="biweekly-sunday-monday-sunday-weeks",
    ),
]


@pytest.mark.parametrize(("pattern", "local_start", "zone", "rrule", "one_day"), UNMAPPED)
def test_monthly_yearly_and_week_start_series_round_trip_occurrence_for_occurrence(
    graph_harness: Any,
    backend: GraphBackend,
    pattern: Pattern,
    local_start: dt.datetime,
    zone: str,
    rrule: str,
    one_day: dt.date,
) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, pattern, local_start, zone)
    meeting = the_meeting(backend, master)
    # Carried with its rule, not flagged ...
    assert meeting.recurrence is not None and meeting.start_tz == zone
    assert backend.unmapped(ALICE) == {}
    # ... the same rule as Graph's exact RRULE (UNTIL aside: the model's is a local date) ...
    assert meeting.recurrence.rrule.split(";UNTIL=")[0] == rrule.split(";UNTIL=")[0]
    graph = instance_starts(backend, emulator, master)
    assert one_day in [s.astimezone(ZoneInfo(zone)).date() for s in graph]
    # ... occurrence for occurrence, as Graph lists them and as dateutil expands the RRULE.
    model = [s for s in meeting.occurrence_starts(len(graph) + 50) if s < WINDOW[1]]
    assert model == graph
    expanded = rrulestr(f"RRULE:{rrule}", dtstart=meeting.start)
    assert [s for s in itertools.islice(expanded, 500) if s < WINDOW[1]] == graph  # type: ignore[arg-type]


def test_a_monthly_series_is_not_flagged_and_its_deletion_arrives(
    graph_harness: Any, backend: GraphBackend, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = graph_harness.emulator
    master = series(
        emulator, Pattern("absoluteMonthly", 1, day_of_month=5), dt.datetime(2027, 2, 5, 9), "UTC"
    )
    with caplog.at_level("WARNING", logger="hybridge.calendar.graph.backend"):
        changes, state, _ = drain(backend, ALICE)
    [meeting] = [c.meeting for c in changes if c.meeting_id == master and c.meeting]
    assert meeting.recurrence == Recurrence("MONTHLY", by_month_day=(5,))
    assert backend.unmapped(ALICE) == {} and "delivered without its rule" not in caplog.text
    emulator.delete_event(master)
    later, _, _ = drain(backend, ALICE, state)
    assert ("delete", master) in [(c.kind, c.meeting_id) for c in later]
    assert backend.unmapped(ALICE) == {}


# -- exceptions and cancelled occurrences -----------------------------------------------------

WEEKLY = Pattern("weekly", 1, ("monday",), count=10)
FIRST = dt.datetime(2027, 2, 1, 9)  # a Monday, 09:00 Berlin


def third_monday(zone: str = "Europe/Berlin") -> dt.datetime:
    return (FIRST + dt.timedelta(days=14)).replace(tzinfo=ZoneInfo(zone))


def test_an_exception_edited_after_the_initial_sync_arrives_as_one_change(
    graph_harness: Any, backend: GraphBackend
) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    changes, state, _ = drain(backend, ALICE, size=4)
    assert [c.meeting_id for c in changes] == [master]
    moved = third_monday() + dt.timedelta(hours=2)
    occurrence = emulator.update_occurrence(
        master,
        third_monday(),
        subject="Moved review",
        start=moved,
        end=moved + dt.timedelta(minutes=45),
    )
    later, state, _ = drain(backend, ALICE, state)
    [change] = later
    assert change.kind == "upsert" and change.meeting_id == occurrence
    meeting = change.meeting
    assert meeting.subject == "Moved review" and meeting.recurrence is None
    assert (
        meeting.start == moved and meeting.start.hour == 11 and meeting.start_tz == "Europe/Berlin"
    )
    # Edited again: again one change, for that exception only.
    emulator.update_occurrence(master, third_monday(), location="Room 7")
    [again] = drain(backend, ALICE, state)[0]
    assert (again.meeting_id, again.meeting.location) == (occurrence, "Room 7")


def test_exceptions_present_at_the_initial_sync_are_meetings_of_their_own(
    graph_harness: Any, backend: GraphBackend
) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    occurrence = emulator.update_occurrence(master, third_monday(), subject="Special")
    changes, _, _ = drain(backend, ALICE, size=3)
    meetings = {c.meeting_id: c.meeting for c in changes}
    assert set(meetings) == {master, occurrence}
    assert meetings[master].recurrence == Recurrence("WEEKLY", 1, ("MO",), 10)
    assert meetings[occurrence].subject == "Special"
    assert meetings[occurrence].start == third_monday()


def test_a_deleted_occurrence_arrives(graph_harness: Any, backend: GraphBackend) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    _, state, _ = drain(backend, ALICE)
    before = emulator.event(master).change_key
    occurrence = emulator.delete_occurrence(master, third_monday())
    assert emulator.event(master).change_key != before  # Exchange keeps it in the master
    later, state, _ = drain(backend, ALICE, state)
    assert [(c.kind, c.meeting_id) for c in later] == [("delete", occurrence), ("upsert", master)]
    # The master is re-read only when it changed: a second removal elsewhere leaves it be.
    other = series(emulator, WEEKLY, FIRST + dt.timedelta(days=1), "Europe/Berlin")
    drain(backend, ALICE, state)
    single = emulator.add_event(
        ALICE,
        "one-off",
        start=NOW + dt.timedelta(days=40),
        end=NOW + dt.timedelta(days=40, hours=1),
    )
    _, state, _ = drain(backend, ALICE, state)
    emulator.delete_event(single)
    last, _, _ = drain(backend, ALICE, state)
    assert [(c.kind, c.meeting_id) for c in last] == [("delete", single)]
    assert backend.read(ALICE, other).recurrence is not None


def test_a_deleted_exception_removes_its_meeting_end_to_end(
    graph_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    occurrence = emulator.update_occurrence(master, third_monday(), subject="Special @webex")
    engine = SyncEngine(graph_harness.backend, state_store, cloud, clock=Clock(), page_size=4)
    try:
        engine.set_mailboxes([ALICE])
        [first] = engine.run_due()
        assert first.state is MailboxState.IDLE
        assert set(cloud.meetings(ALICE)) == {master, occurrence}
        # The exception's own body got the join details, once (PATCH on its id).
        body = graph_harness.emulator.store.instance(occurrence).body
        assert body is not None and body.count(BEGIN_MARKER) == 1
        emulator.delete_occurrence(master, third_monday())
        engine.sync_mailbox(ALICE)
        assert set(cloud.meetings(ALICE)) == {master}
    finally:
        engine.close()


def test_moving_the_series_drops_its_exceptions(graph_harness: Any, backend: GraphBackend) -> None:
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    occurrence = emulator.update_occurrence(master, third_monday(), subject="Special")
    _, state, _ = drain(backend, ALICE)
    later_start = FIRST.replace(hour=10, tzinfo=ZoneInfo("Europe/Berlin"))
    emulator.update_event(master, start=later_start, end=later_start + dt.timedelta(hours=1))
    later, _, _ = drain(backend, ALICE, state)
    kinds = {(c.kind, c.meeting_id) for c in later}
    assert kinds == {("delete", occurrence), ("upsert", master)}
    [moved] = [c.meeting for c in later if c.meeting is not None]
    assert moved.start == later_start


def test_an_attendees_cancelled_occurrence_arrives_as_a_delete(
    graph_harness: Any, backend: GraphBackend
) -> None:
    emulator = graph_harness.emulator
    start = FIRST.replace(tzinfo=ZoneInfo("Europe/Berlin"))
    master = emulator.add_event(
        ALICE,
        "Bob's weekly",
        start=start,
        end=start + dt.timedelta(minutes=30),
        time_zone="Europe/Berlin",
        organizer="bob@contoso.test",
        pattern=WEEKLY,
    )
    _, state, _ = drain(backend, ALICE)
    occurrence = emulator.cancel_occurrence(master, third_monday())
    later, _, _ = drain(backend, ALICE, state)
    assert [(c.kind, c.meeting_id) for c in later] == [("delete", occurrence)]


def test_join_details_go_into_an_occurrence_that_becomes_an_exception(
    graph_harness: Any, backend: GraphBackend
) -> None:
    # PATCH on a plain occurrence's id edits that occurrence alone (Graph), with If-Match.
    emulator = graph_harness.emulator
    master = series(emulator, WEEKLY, FIRST, "Europe/Berlin")
    occurrence = emulator.occurrence_id(master, third_monday())
    assert backend.write_join_details(ALICE, occurrence, DETAILS) == "written"
    assert backend.write_join_details(ALICE, occurrence, DETAILS) == "unchanged"
    assert emulator.event(master).body == ""
    meeting = backend.read(ALICE, occurrence)
    assert meeting.body.count(BEGIN_MARKER) == 1 and meeting.start == third_monday()


# -- time zones -------------------------------------------------------------------------------


def test_weekly_series_in_a_windows_zone_keeps_wall_clock_time_across_dst(
    graph_harness: Any, backend: GraphBackend
) -> None:
    emulator = graph_harness.emulator
    # Every other Thursday 09:30 in Berlin from 4 March 2027: CET, then CEST from 28 March,
    # CET again from 31 October.
    pattern = Pattern("weekly", 2, ("thursday",), end_date=dt.date(2027, 11, 30))
    master = series(emulator, pattern, dt.datetime(2027, 3, 4, 9, 30), "Europe/Berlin")
    event = backend._get_event(ALICE, master)
    assert event["originalStartTimeZone"] == "W. Europe Standard Time"
    assert event["recurrence"]["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    meeting = the_meeting(backend, master)
    assert meeting.start_tz == "Europe/Berlin"
    graph = instance_starts(backend, emulator, master)
    assert {(s.astimezone(ZoneInfo("Europe/Berlin")).hour, s.minute) for s in graph} == {(9, 30)}
    assert {s.astimezone(dt.UTC).hour for s in graph} == {7, 8}  # CEST and CET
    model = [s for s in meeting.occurrence_starts(100) if s < WINDOW[1]]
    assert model == graph
