"""SyncFolderItems copies stored item bytes: the envelope must be byte-for-byte what
building and serializing the elements gives, and items it cannot copy take the slow path."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from hybridge.testing.ews.items import item_element, item_fragment
from hybridge.testing.ews.soap import M, T, el, envelope, prebuilt, sub
from hybridge.testing.ews.store import MailboxStore

MAILBOX = "alice@contoso.test"
START = dt.datetime(2027, 3, 22, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store() -> MailboxStore:
    store = MailboxStore()
    store.ensure_mailbox(MAILBOX)
    return store


def _envelopes(item: object, fields: set[str] | None) -> tuple[bytes, bytes]:
    built = el(M, "Changes")
    sub(built, T, "Create").append(item_element(item, fields))  # type: ignore[arg-type]
    copied = el(M, "Changes")
    fragment = item_fragment(item, fields)  # type: ignore[arg-type]
    assert fragment is not None
    prebuilt(copied, T, "Create", fragment)
    return envelope(built), envelope(copied)


@pytest.mark.parametrize(
    "fields", [None, {"Subject", "Start", "End", "Recurrence"}, {"UID"}, set()]
)
def test_copied_item_bytes_equal_the_serialized_elements(
    store: MailboxStore, fields: set[str] | None
) -> None:
    item = store.add_calendar_item(
        MAILBOX,
        subject='Budget & <review> "Q3" @webex',
        start=START,
        end=START + dt.timedelta(hours=1),
        body="line 1\nline 2\t& more",
        timezone="W. Europe Standard Time",
        required_attendees=["bob@contoso.test"],
        optional_attendees=["carol@contoso.test"],
        recurrence_weekly_days=["Monday", "Thursday"],
    )
    built, copied = _envelopes(item, fields)
    assert copied == built
    ET.fromstring(copied)  # noqa: S314 - well-formed


def test_an_updated_item_is_copied_with_its_new_bytes(store: MailboxStore) -> None:
    item = store.add_calendar_item(MAILBOX, subject="Old", start=START, end=START)
    store.set_subject(item.item_id, "New & improved")
    built, copied = _envelopes(item, None)
    assert copied == built
    assert b"<t:Subject>New &amp; improved</t:Subject>" in copied


def test_a_property_in_another_namespace_is_not_copied(store: MailboxStore) -> None:
    folder = store.calendar(MAILBOX)
    foreign = ET.Element("{urn:example:other}Tag")
    foreign.text = "x"
    subject = el(T, "Subject", "With a foreign property")
    item = store.create_item(folder, "IPM.Appointment", {"Subject": subject, "Tag": foreign})
    assert item.spans is None
    assert item_fragment(item, None) is None
    # The element path still serves it.
    assert item_element(item, None).find(f"{{{T}}}Subject") is not None


def test_a_nul_outside_a_spliced_element_is_refused() -> None:
    body = el(M, "Changes")
    sub(body, T, "Subject", "\x00")
    prebuilt(body, T, "Create", b"<t:CalendarItem />")
    with pytest.raises(ValueError, match="a NUL outside the spliced elements: cannot splice"):
        envelope(body)
