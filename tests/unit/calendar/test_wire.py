"""calendar.wire: exact round trips and refusals that name the field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridge.calendar import wire
from hybridge.calendar.errors import CalendarError
from hybridge.calendar.model import (
    WEEKDAYS,
    Attendee,
    Meeting,
    ModifiedOccurrence,
    OutOfOffice,
    Recurrence,
    zone,
)
from hybridge.calendar.recurrence import FREQUENCIES
from hybridge.core.meetings import JoinDetails, JoinTemplate

BERLIN = zone("Europe/Berlin")


def _meeting(**over: Any) -> Meeting:
    fields: dict[str, Any] = {
        "mailbox": "alice@contoso.test",
        "meeting_id": "AAMkAD=",
        "version": "CQAAABYA",
        "uid": "040000008200E00074C5B7101A82E008",
        "organizer": "alice@contoso.test",
        "subject": "Weekly @webex:myroom",
        "start": dt.datetime(2026, 3, 23, 10, 0, tzinfo=BERLIN),
        "end": dt.datetime(2026, 3, 23, 11, 0, tzinfo=BERLIN),
        "start_tz": "Europe/Berlin",
        "end_tz": "Europe/Berlin",
        "body": "<p>Agenda</p>",
        "body_type": "HTML",
        "location": "Room 1",
        "attendees": (Attendee("bob@contoso.test"), Attendee("room1@contoso.test", "resource")),
        "recurrence": Recurrence("WEEKLY", 1, ("MO",), None, dt.date(2026, 12, 31)),
    }
    fields.update(over)
    return Meeting(**fields)


def _doc(**over: Any) -> dict[str, Any]:
    doc = wire.meeting_to_json(_meeting())
    doc.update(over)
    return doc


def test_meeting_round_trip_keeps_every_field_and_offsets() -> None:
    meeting = _meeting()
    doc = wire.meeting_to_json(meeting)
    assert doc["start"] == "2026-03-23T10:00:00+01:00"
    assert doc["attendees"][1] == {"address": "room1@contoso.test", "role": "resource"}
    assert doc["recurrence"]["until"] == "2026-12-31"
    back = wire.meeting_from_bytes(wire.dumps(doc))
    assert back == meeting
    assert back.uid == meeting.uid  # uid is compare=False on Meeting
    assert back.start.utcoffset() == dt.timedelta(hours=1)
    assert str(back.start.tzinfo) == "Europe/Berlin"


def test_meeting_across_dst_keeps_the_offset_of_each_time() -> None:
    # Starts before the 2026-03-29 change, ends after it: two offsets in one meeting.
    meeting = _meeting(
        start=dt.datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
        end=dt.datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN),
        recurrence=None,
    )
    doc = wire.meeting_to_json(meeting)
    assert doc["start"].endswith("+01:00") and doc["end"].endswith("+02:00")
    assert wire.meeting_from_json(json.loads(wire.dumps(doc))) == meeting


def test_join_details_round_trip() -> None:
    details = JoinDetails(
        join_url="https://meet.example.test/j/abc",
        template=JoinTemplate(header="Hello\nworld", footer="Bye"),
        sip_address="2601123456@meet.example.test",
        meeting_number="2601 123 456",
    )
    doc = wire.join_details_to_json(details)
    assert wire.join_details_from_bytes(wire.dumps(doc)) == details
    minimal = JoinDetails(join_url="https://meet.example.test/j/x")
    assert wire.join_details_from_json(wire.join_details_to_json(minimal)) == minimal


_ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_ADDR = st.from_regex(r"[a-z0-9._-]{1,12}@[a-z0-9-]{1,10}\.test", fullmatch=True)


_INSTANTS = st.datetimes(
    dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1), timezones=_ZONES.map(zone)
)


@st.composite
def recurrences(draw: st.DrawFn) -> Recurrence:
    """Any rule of the model: every frequency and rule part, with exceptions."""
    frequency = draw(st.sampled_from(FREQUENCIES))
    day = st.sampled_from(WEEKDAYS)
    by_day: tuple[str, ...] = ()
    by_month_day: tuple[int, ...] = ()
    by_month: tuple[int, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    if frequency in ("DAILY", "WEEKLY"):
        by_day = tuple(draw(st.lists(day, max_size=7)))
    else:
        # Exchange's shapes: days (with an ordinal, or with a set position) or month days.
        shape = draw(st.sampled_from(["days", "ordinals", "month_days"]))
        by_month = tuple(draw(st.lists(st.integers(1, 12), max_size=3)))
        if shape == "ordinals":
            ordinal = st.sampled_from([1, 2, 3, 4, 5, -1, -2])
            pair = st.tuples(ordinal, st.sampled_from(WEEKDAYS))
            by_day = tuple(f"{n}{d}" for n, d in draw(st.lists(pair, min_size=1, max_size=3)))
        elif shape == "days":
            by_day = tuple(draw(st.lists(day, min_size=1, max_size=7, unique=True)))
            by_set_pos = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, -1]), max_size=2)))
        else:
            days = st.integers(1, 28) | st.integers(-28, -1)
            by_month_day = tuple(draw(st.lists(days, min_size=1, max_size=4, unique=True)))
            by_set_pos = tuple(draw(st.lists(st.sampled_from([1, -1]), max_size=1)))
    end = draw(st.sampled_from(["none", "count", "until"]))
    exdates = draw(st.lists(_INSTANTS, max_size=3, unique_by=lambda d: d.timestamp()))
    taken = {d.timestamp() for d in exdates}
    originals = draw(
        st.lists(
            _INSTANTS.filter(lambda d: d.timestamp() not in taken),
            max_size=3,
            unique_by=lambda d: d.timestamp(),
        )
    )
    modified = []
    for original in originals:
        moved = draw(_INSTANTS)
        length = draw(st.timedeltas(dt.timedelta(0), dt.timedelta(hours=5)))
        modified.append(ModifiedOccurrence(original, moved, moved + length))
    return Recurrence(
        frequency,
        draw(st.integers(1, 999)),
        by_day,
        draw(st.integers(1, 500)) if end == "count" else None,
        draw(st.dates()) if end == "until" else None,
        by_month_day=by_month_day,
        by_month=by_month,
        by_set_pos=by_set_pos,
        week_start=draw(st.sampled_from(WEEKDAYS)),
        exdates=tuple(exdates),
        modified=tuple(modified),
    )


@st.composite
def meetings(draw: st.DrawFn) -> Meeting:
    start_tz, end_tz = draw(_ZONES), draw(_ZONES)
    start = draw(
        st.datetimes(
            dt.datetime(2000, 1, 1), dt.datetime(2099, 1, 1), timezones=st.just(zone(start_tz))
        )
    )
    length = draw(st.timedeltas(dt.timedelta(0), dt.timedelta(days=3)))
    recurrence = draw(st.none() | recurrences())
    return Meeting(
        mailbox=draw(_ADDR),
        meeting_id=draw(_TEXT.filter(bool)),
        version=draw(_TEXT),
        uid=draw(_TEXT),
        organizer=draw(_ADDR),
        subject=draw(_TEXT),
        start=start,
        end=start + length,
        start_tz=start_tz,
        end_tz=end_tz,
        body=draw(_TEXT),
        body_type=draw(st.sampled_from(["Text", "HTML"])),
        location=draw(_TEXT),
        attendees=tuple(
            draw(
                st.lists(
                    st.builds(
                        Attendee, _ADDR, st.sampled_from(["required", "optional", "resource"])
                    ),
                    max_size=5,
                )
            )
        ),
        recurrence=recurrence,
    )


@settings(max_examples=60, deadline=None)
@given(meetings())
def test_any_meeting_round_trips(meeting: Meeting) -> None:
    back = wire.meeting_from_bytes(wire.dumps(wire.meeting_to_json(meeting)))
    assert back == meeting
    assert back.uid == meeting.uid
    # Same instants, same offsets (equality within one zone ignores fold; offsets do not).
    assert back.start.utcoffset() == meeting.start.utcoffset()
    assert back.end.utcoffset() == meeting.end.utcoffset()


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        JoinDetails,
        st.from_regex(r"https://[a-z]{1,10}\.test/j/[A-Za-z0-9_-]{0,30}", fullmatch=True),
        st.builds(JoinTemplate, st.text(alphabet="ab \n\t", max_size=30), st.text(max_size=0)),
        st.none() | st.from_regex(r"[0-9]{4,10}@[a-z]{1,8}\.test", fullmatch=True),
        st.none() | st.from_regex(r"[0-9]{4}( [0-9]{3}){0,3}", fullmatch=True),
    )
)
def test_any_join_details_round_trip(details: JoinDetails) -> None:
    assert wire.join_details_from_bytes(wire.dumps(wire.join_details_to_json(details))) == details


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_a_wire_error_never_another_exception(data: bytes) -> None:
    with pytest.raises(wire.WireFormatError):
        wire.meeting_from_bytes(data)


# ---------------------------------------------------------------- refusals


def _refused(doc: Any) -> wire.WireFormatError:
    with pytest.raises(wire.WireFormatError) as info:
        wire.meeting_from_json(doc)
    assert isinstance(info.value, CalendarError)
    return info.value


def test_missing_field_is_named() -> None:
    doc = _doc()
    del doc["start_tz"]
    err = _refused(doc)
    assert err.field == "start_tz"
    assert str(err) == "start_tz: is missing"


def test_unknown_field_is_named() -> None:
    assert _refused(_doc(keyword="@webex")).field == "keyword"


def test_wrong_type_is_named() -> None:
    err = _refused(_doc(subject=42))
    assert err.field == "subject"
    assert "42 must be a string" in str(err)


def test_boolean_is_not_an_integer() -> None:
    doc = _doc()
    doc["recurrence"]["interval"] = True
    assert _refused(doc).field == "recurrence.interval"


def test_naive_datetime_is_refused() -> None:
    err = _refused(_doc(start="2026-03-23T10:00:00"))
    assert err.field == "start"
    assert "has no UTC offset" in str(err)


def test_not_a_datetime_is_refused() -> None:
    err = _refused(_doc(end="next tuesday"))
    assert err.field == "end"
    assert "'next tuesday' is not an ISO 8601 date-time" in str(err)


def test_unknown_zone_is_refused() -> None:
    err = _refused(_doc(end_tz="Mars/Olympus_Mons"))
    assert err.field == "end_tz"
    assert "'Mars/Olympus_Mons' is not an IANA time zone" in str(err)


def test_end_before_start_is_refused() -> None:
    assert _refused(_doc(end="2026-03-23T09:00:00+01:00")).field == "end"


def test_bad_attendee_role_names_the_index() -> None:
    doc = _doc()
    doc["attendees"][1]["role"] = "chair"
    err = _refused(doc)
    assert err.field == "attendees[1].role"
    assert "'chair'" in str(err)


def test_bad_attendee_address_names_the_index() -> None:
    doc = _doc()
    doc["attendees"][0]["address"] = "not-an-address"
    assert _refused(doc).field == "attendees[0].address"


def test_bad_recurrence_names_the_field() -> None:
    doc = _doc()
    doc["recurrence"]["by_day"] = ["XX"]
    assert _refused(doc).field == "recurrence.by_day"
    doc = _doc()
    doc["recurrence"]["frequency"] = "HOURLY"
    assert _refused(doc).field == "recurrence.frequency"
    doc = _doc()
    doc["recurrence"]["until"] = "2026-13-01"
    assert _refused(doc).field == "recurrence.until"


def test_body_type_is_checked() -> None:
    assert _refused(_doc(body_type="RTF")).field == "body_type"


def test_empty_meeting_id_is_refused() -> None:
    assert _refused(_doc(meeting_id="")).field == "meeting_id"


def test_not_an_object_is_refused() -> None:
    assert "must be a JSON object" in str(_refused([1, 2]))


def test_oversize_document_is_refused_before_parsing() -> None:
    doc = _doc(body="x" * wire.MAX_MEETING_BYTES)
    with pytest.raises(wire.WireTooLargeError) as info:
        wire.meeting_from_bytes(wire.dumps(doc))
    assert info.value.field == "(body)"
    assert f"at most {wire.MAX_MEETING_BYTES}" in str(info.value)


def test_oversize_field_is_named() -> None:
    with pytest.raises(wire.WireTooLargeError) as info:
        wire.meeting_from_json(_doc(subject="s" * (wire.MAX_SUBJECT_CHARS + 1)))
    assert info.value.field == "subject"
    with pytest.raises(wire.WireTooLargeError) as info:
        wire.meeting_from_json(
            _doc(attendees=[{"address": "a@b.c", "role": "required"}] * (wire.MAX_ATTENDEES + 1))
        )
    assert info.value.field == "attendees"


def test_invalid_json_is_refused() -> None:
    with pytest.raises(wire.WireFormatError) as info:
        wire.meeting_from_bytes(b'{"mailbox": ')
    assert info.value.field == "(body)"


def _details_doc(**over: Any) -> dict[str, Any]:
    doc = wire.join_details_to_json(
        JoinDetails(join_url="https://meet.example.test/j/a", meeting_number="123 456")
    )
    doc.update(over)
    return doc


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"join_url": "http://meet.example.test/j/a"}, "join_url"),
        ({"join_url": 7}, "join_url"),
        ({"sip_address": "a b@c"}, "sip_address"),
        ({"meeting_number": "12-34"}, "meeting_number"),
        ({"template": {"header": "x" * 1025, "footer": ""}}, "template.header"),
        ({"template": {"header": "", "footer": "bell\x07"}}, "template.footer"),
        ({"template": {"header": ""}}, "template.footer"),
        ({"template": "hello"}, "template"),
    ],
)
def test_join_details_refusals_name_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(wire.WireFormatError) as info:
        wire.join_details_from_json(_details_doc(**over))
    assert info.value.field == field


def test_join_details_missing_field() -> None:
    doc = _details_doc()
    del doc["meeting_number"]
    with pytest.raises(wire.WireFormatError) as info:
        wire.join_details_from_json(doc)
    assert info.value.field == "meeting_number"


def test_template_of_exactly_1024_characters_is_accepted() -> None:
    doc = _details_doc(template={"header": "h" * 1024, "footer": "f" * 1024})
    assert wire.join_details_from_json(doc).template.header == "h" * 1024


def test_status_report_round_trip_leaves_the_reply_text_out() -> None:
    until = dt.datetime(2026, 12, 24, 18, 0, tzinfo=BERLIN)
    report = wire.StatusReport(
        "error",
        "impersonation denied",
        OutOfOffice("scheduled", False, reply="I am away, call 555-0100", end=until),
    )
    doc = wire.user_status_to_json(report)
    assert doc == {
        "status": "error",
        "reason": "impersonation denied",
        "out_of_office": {"state": "scheduled", "active": False, "until": until.isoformat()},
    }
    assert "555-0100" not in wire.dumps(doc).decode()
    back = wire.user_status_from_json(json.loads(wire.dumps(doc)))
    assert (back.status, back.reason) == ("error", "impersonation denied")
    assert back.out_of_office is not None and back.out_of_office.end == until
    plain = wire.user_status_from_json(wire.user_status_to_json(wire.StatusReport("ok")))
    assert plain == wire.StatusReport("ok")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"status": "sleeping", "reason": "", "out_of_office": None}, "status"),
        ({"status": "ok", "reason": 3, "out_of_office": None}, "reason"),
        ({"status": "ok", "reason": ""}, "out_of_office"),
        (
            {
                "status": "ok",
                "reason": "",
                "out_of_office": {"state": "on", "active": True, "until": None},
            },
            "out_of_office.state",
        ),
        (
            {
                "status": "ok",
                "reason": "",
                "out_of_office": {"state": "enabled", "active": 1, "until": None},
            },
            "out_of_office.active",
        ),
        (
            {
                "status": "ok",
                "reason": "",
                "out_of_office": {
                    "state": "enabled",
                    "active": True,
                    "until": "2026-12-24T18:00:00",
                },
            },
            "out_of_office.until",
        ),
    ],
)
def test_status_report_refusals_name_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(wire.WireFormatError) as info:
        wire.user_status_from_json(doc)
    assert info.value.field == field
