"""A CalDAV series with exceptions on a real Radicale: one resource holding the master
(RRULE, EXDATE) and an overridden instance (RECURRENCE-ID) arrives as one meeting whose
rule carries both; editing the override later changes that meeting."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from test_sync_contract import drain, upserts

from hybridge.calendar.model import ModifiedOccurrence

BERLIN = ZoneInfo("Europe/Berlin")


def _ics(uid: str, moved_to: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hybridge//test//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20270129T170000\r\n"
        "DTEND;TZID=Europe/Berlin:20270129T180000\r\n"
        "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=6\r\n"
        "EXDATE;TZID=Europe/Berlin:20270331T170000\r\n"
        "SUMMARY:Month close @webex\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270101T000000Z\r\n"
        "RECURRENCE-ID;TZID=Europe/Berlin:20270430T170000\r\n"
        f"DTSTART;TZID=Europe/Berlin:{moved_to}\r\n"
        "DURATION:PT1H\r\nSUMMARY:Month close (moved)\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def _put(harness: Any, href: str, text: str) -> None:
    response = harness.admin.put(
        harness._url(href), text, {"Content-Type": "text/calendar; charset=utf-8"}
    )
    assert response.status in (201, 204), response.status


def test_exdate_and_an_overridden_instance_arrive_with_the_series(caldav_harness: Any) -> None:
    alice = caldav_harness.mailbox("alice")
    uid = f"{uuid.uuid4().hex}@hybridge.test"
    href = f"/{alice}/calendar/{uid.split('@')[0]}.ics"
    _put(caldav_harness, href, _ics(uid, "20270429T150000"))
    changes, state = drain(caldav_harness.backend, alice)
    meeting = upserts(changes)[href]
    rule = meeting.recurrence
    assert rule is not None and meeting.subject == "Month close @webex"
    assert rule.exdates == (dt.datetime(2027, 3, 31, 17, tzinfo=BERLIN),)
    assert rule.modified == (
        ModifiedOccurrence(
            dt.datetime(2027, 4, 30, 17, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 15, tzinfo=BERLIN),
            dt.datetime(2027, 4, 29, 16, tzinfo=BERLIN),
        ),
    )
    days = [(s.month, s.day, s.hour) for s in meeting.occurrence_starts(10)]
    assert days == [(1, 29, 17), (2, 26, 17), (4, 29, 15), (5, 31, 17), (6, 30, 17)]
    # The override moves again: the same meeting, changed.
    _put(caldav_harness, href, _ics(uid, "20270428T090000"))
    later, _ = drain(caldav_harness.backend, alice, state)
    moved = upserts(later)[href].recurrence
    assert moved is not None
    assert moved.modified[0].start == dt.datetime(2027, 4, 28, 9, tzinfo=BERLIN)
