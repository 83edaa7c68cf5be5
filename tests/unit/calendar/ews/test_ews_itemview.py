"""An ItemView gives the same Meeting as exchangelib's CalendarItem, for the same XML.

The XML is what the EWS emulator puts in a SyncFolderItems answer (``item_element`` over
the store's items), parsed with exchangelib's lxml parser; each element is read twice —
by ``item_view`` and by ``CalendarItem.from_xml`` — and the two meetings must be equal.
Variants cover the fast paths (canonical UTC dates, cached zones, addresses) and the
inputs that must fall back to exchangelib's own field (offsets, fractions, bad dates).
"""

from __future__ import annotations

import copy
import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest
from exchangelib.items import CalendarItem
from exchangelib.util import to_xml

from hybridge.calendar.ews.backend import meeting_from_item
from hybridge.calendar.ews.itemview import _utc, item_view
from hybridge.testing.ews.items import item_element
from hybridge.testing.ews.soap import T
from hybridge.testing.ews.store import MailboxStore

MAILBOX = "alice@contoso.test"
START = dt.datetime(2027, 3, 22, 9, 0, tzinfo=dt.UTC)
FIELDS = {
    "Subject", "Body", "Start", "End", "StartTimeZone", "EndTimeZone", "Location",
    "Organizer", "RequiredAttendees", "OptionalAttendees", "Resources", "Recurrence", "UID",
}  # fmt: skip


def _xml(edit: Callable[[ET.Element], None] | None = None, **kwargs: Any) -> Any:
    store = MailboxStore()
    store.ensure_mailbox(MAILBOX)
    options: dict[str, Any] = {
        "subject": "Weekly @webex",
        "start": START,
        "end": START + dt.timedelta(minutes=30),
        "body": "Agenda",
    }
    options.update(kwargs)
    item = store.add_calendar_item(MAILBOX, **options)
    elem = item_element(item, FIELDS)
    if edit is not None:
        edit(elem)
    wrapped = ET.Element(f"{{{T}}}Items")
    wrapped.append(elem)
    return to_xml(iter([ET.tostring(wrapped)])).getroot()[0]


def _both(elem: Any) -> tuple[object, object]:
    def outcome(parse: Callable[[Any], Any]) -> object:
        try:
            return meeting_from_item(MAILBOX, parse(copy.deepcopy(elem)))
        except Exception as exc:
            return (type(exc).__name__, str(exc))

    return outcome(lambda e: item_view(e, None)), outcome(lambda e: CalendarItem.from_xml(e, None))


def _set(tag: str, text: str | None = None, **attrs: str) -> Callable[[ET.Element], None]:
    def edit(elem: ET.Element) -> None:
        child = elem.find(f"{{{T}}}{tag}")
        assert child is not None
        if text is not None:
            child.text = text
        for name, value in attrs.items():
            child.set(name, value)

    return edit


@pytest.mark.parametrize(
    ("kwargs", "edit"),
    [
        ({}, None),
        (
            {
                "timezone": "W. Europe Standard Time",
                "recurrence_weekly_days": ["Monday", "Wednesday"],
                "required_attendees": ["bob@contoso.test", "carol@contoso.test"],
                "optional_attendees": ["dave@contoso.test"],
                "location": "Room 1",
                "organizer": "boss@contoso.test",
            },
            None,
        ),
        ({"timezone": "Pacific Standard Time"}, _set("Body", "<p>Hi @meet</p>", BodyType="HTML")),
        # Not the canonical UTC form: exchangelib's field parses these.
        ({}, _set("Start", "2027-03-22T10:00:00+01:00")),
        ({}, _set("End", "2027-03-22T09:30:00.500Z")),
        # A zone id exchangelib does not know: both give no zone (and warn).
        ({}, _set("StartTimeZone", Id="Mars Standard Time", Name="Mars Standard Time")),
    ],
)
def test_item_view_gives_the_calendar_items_meeting(
    kwargs: dict[str, Any], edit: Callable[[ET.Element], None] | None
) -> None:
    view, item = _both(_xml(edit, **kwargs))
    assert view == item


def test_a_meeting_read_twice_reuses_the_zone_and_stays_equal() -> None:
    first = _both(_xml(timezone="Tokyo Standard Time"))
    second = _both(_xml(timezone="Tokyo Standard Time"))
    assert first[0] == first[1]
    assert second[0] == second[1]


@pytest.mark.parametrize(
    "text",
    [
        "2027-13-22T09:00:00Z",  # month 13
        "2027-03-22 09:00:00Z",  # no T
        "2027-03-22T09:00Z",  # no seconds
        "2027-03-22T09:00:00",  # naive
        "",
    ],
)
def test_dates_the_fast_path_refuses_fall_back_to_exchangelib(text: str) -> None:
    assert _utc(text) is None
    view, item = _both(_xml(_set("Start", text)))
    assert view == item


def test_the_fast_path_date_is_exchangelibs_value() -> None:
    from exchangelib import UTC
    from exchangelib.ewsdatetime import EWSDateTime

    value = _utc("2027-03-22T09:05:07Z")
    assert value == EWSDateTime.from_string("2027-03-22T09:05:07Z")
    assert type(value) is EWSDateTime
    assert value is not None and value.tzinfo is UTC
