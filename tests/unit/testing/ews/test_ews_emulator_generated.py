"""Generated calendars: a mailbox whose meetings are built on demand must answer every
operation exactly as the same meetings added one by one would (apart from the opaque ids,
change keys and sync states), before and after clients write to them."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import tracemalloc
import xml.etree.ElementTree as ET

import pytest
from ews_soap_requests import NS, SVC_PASSWORD, envelope, sync_items
from exchangelib import Credentials

from hybridge.calendar.ews.transport import account_for
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    GeneratedCalendar,
    MailboxStore,
    StoreLookupError,
)
from hybridge.testing.ews.directory import Directory
from hybridge.testing.ews.generated import (
    MAX_GENERATED_MEETINGS,
    generated_item_id,
    parse_generated_id,
)
from hybridge.testing.ews.itemblob import pack_props
from hybridge.testing.ews.items import RequestContext, find_item, get_folder, get_item
from hybridge.testing.ews.soap import T, el
from hybridge.testing.ews.soap import envelope as response_envelope
from hybridge.testing.ews.sync import sync_folder_items

ALICE = "alice@contoso.test"
FIRST = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
PLAN = GeneratedCalendar(meetings=23, first_start=FIRST, keyword="@meet:space & <b>")


def _context(store: MailboxStore) -> RequestContext:
    directory = Directory(EmulatorConfig(accounts=(DirectoryAccount(ALICE, "alice", "pw"),)))
    return RequestContext(store, directory, ALICE, ALICE)


def _op(body: str) -> ET.Element:
    root = ET.fromstring(envelope(body))  # noqa: S314 - our own request text
    op = root.find("s:Body/*", NS)
    assert op is not None
    return op


def _seeded_and_generated() -> tuple[MailboxStore, MailboxStore]:
    seeded, generated = MailboxStore(), MailboxStore()
    folder = seeded.calendar(ALICE)
    for k in range(PLAN.meetings):
        seeded.create_item(folder, "IPM.Appointment", PLAN.props(ALICE, k))
    generated.generate_calendar(ALICE, PLAN)
    return seeded, generated


class Normalizer:
    """Replaces ids, change keys and sync states by their order of first appearance."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, xml: bytes) -> str:
        def name(match: re.Match[str]) -> str:
            value = match.group(2)
            alias = self.names.setdefault(value, f"#{len(self.names)}")
            return f"{match.group(1)}{alias}"

        text = xml.decode()
        text = re.sub(r'((?:Id|ChangeKey)=")([^"]+)', name, text)
        return re.sub(r"(<m:SyncState>)([^<]+)", name, text)


def _walk(store: MailboxStore, state: str | None, page: int) -> tuple[list[bytes], str]:
    """Every SyncFolderItems answer from ``state`` until the last page; and the last state."""
    answers = []
    for _ in range(100):
        msg = sync_folder_items(_context(store), _op(sync_items(state, page)))
        answers.append(response_envelope(msg))  # splices the copied item bytes
        state = msg.findtext(".//m:SyncState", namespaces=NS)
        if msg.findtext(".//m:IncludesLastItemInRange", namespaces=NS) == "true":
            assert state is not None
            return answers, state
    raise AssertionError("SyncFolderItems never reached the last page")


def _mutate(store: MailboxStore) -> None:
    """The same writes on either store, by meeting order (ids differ between stores)."""
    ids = [i.item_id for i in store.items(store.calendar(ALICE))]
    store.set_subject(ids[2], "Moved & renamed")
    store.set_subject(ids[2], "Moved twice")
    store.remove(ids[4])
    store.remove(ids[22])
    store.add_calendar_item(ALICE, subject="Added later", start=FIRST, end=FIRST)
    store.set_subject(ids[7], "Changed")


def test_the_template_bytes_are_the_serialized_properties() -> None:
    for smtp in (ALICE, "o'neil&co@example.test"):
        for k in range(PLAN.meetings):
            assert PLAN.packed(smtp, k) == pack_props(PLAN.props(smtp, k))


def test_meetings_are_deterministic_and_spread_over_the_year() -> None:
    plan = GeneratedCalendar(meetings=260, first_start=FIRST)
    again = GeneratedCalendar(meetings=260, first_start=FIRST)
    assert plan.packed(ALICE, 17) == again.packed(ALICE, 17)
    assert plan.packed(ALICE, 17) != plan.packed("bob@contoso.test", 17)
    starts = [plan.props(ALICE, k)["Start"].text or "" for k in (0, 259)]
    # The last of a year's meetings is within 365 days of the first day.
    assert starts[0].startswith("2027-01-04") and "2027-12-28" < starts[1] < "2028-01-04"
    subjects = [plan.props(ALICE, k)["Subject"].text for k in (0, 1, 10)]
    assert subjects == ["Meeting 0 @webex", "Meeting 1", "Meeting 10 @webex"]


@pytest.mark.parametrize("page", [1, 4, 512])
def test_sync_pages_match_a_seeded_mailbox_before_and_after_writes(page: int) -> None:
    seeded, generated = _seeded_and_generated()
    norm_s, norm_g = Normalizer(), Normalizer()
    first_s, state_s = _walk(seeded, None, page)
    first_g, state_g = _walk(generated, None, page)
    assert [norm_g(a) for a in first_g] == [norm_s(a) for a in first_s]
    _mutate(seeded)
    _mutate(generated)
    for start_s, start_g in ((state_s, state_g), (None, None)):  # incremental, then full
        again_s, _ = _walk(seeded, start_s, page)
        again_g, _ = _walk(generated, start_g, page)
        assert [norm_g(a) for a in again_g] == [norm_s(a) for a in again_s]
    assert "Moved twice" in b"".join(again_g).decode()


def test_find_item_and_folder_counts_match_a_seeded_mailbox() -> None:
    seeded, generated = _seeded_and_generated()
    _mutate(seeded)
    _mutate(generated)
    view = (
        "<m:FindItem Traversal='Shallow'><m:ItemShape><t:BaseShape>AllProperties"
        "</t:BaseShape></m:ItemShape><m:CalendarView StartDate='2027-03-01T00:00:00Z'"
        " EndDate='2027-09-01T00:00:00Z' MaxEntriesReturned='50'/><m:ParentFolderIds>"
        "<t:DistinguishedFolderId Id='calendar'/></m:ParentFolderIds></m:FindItem>"
    )
    folder = (
        "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>"
        "<m:FolderIds><t:DistinguishedFolderId Id='calendar'/></m:FolderIds></m:GetFolder>"
    )
    norm_s, norm_g = Normalizer(), Normalizer()
    for handler, body in ((find_item, view), (get_folder, folder)):
        got_s = response_envelope(handler(_context(seeded), _op(body)))
        got_g = response_envelope(handler(_context(generated), _op(body)))
        assert norm_g(got_g) == norm_s(got_s)
    assert generated.item_count(generated.calendar(ALICE)) == PLAN.meetings - 2 + 1


def test_only_written_meetings_are_stored() -> None:
    store = MailboxStore()
    folder = store.generate_calendar(ALICE, PLAN)
    assert folder.items == {} and store.item_count(folder) == PLAN.meetings
    third = generated_item_id(ALICE, 3)
    built = store.item(third)
    assert built is not None and built.text("Subject") == "Meeting 3"
    assert store.item(third) is not built  # built afresh: nothing kept by a read
    store.set_subject(third, "Now stored")
    assert list(folder.items) == [third]
    assert store.item(third).text("Subject") == "Now stored"  # type: ignore[union-attr]
    store.remove(generated_item_id(ALICE, 5))
    assert store.item(generated_item_id(ALICE, 5)) is None
    assert store.item_count(folder) == PLAN.meetings - 1


def test_two_writers_of_one_generated_meeting_change_one_stored_item() -> None:
    store = MailboxStore()
    store.generate_calendar(ALICE, PLAN)
    item_id = generated_item_id(ALICE, 1)
    first, second = store.item(item_id), store.item(item_id)
    assert first is not None and second is not None
    store.update_item(first, {"Location": el(T, "Location", "Room 1")})
    kept = store.update_item(second, {"Subject": el(T, "Subject", "Both")})
    stored = store.item(item_id)
    assert stored is kept
    assert (stored.text("Location"), stored.text("Subject")) == ("Room 1", "Both")


def test_ids_that_name_no_generated_meeting_are_not_found() -> None:
    store = MailboxStore()
    store.generate_calendar(ALICE, PLAN)
    assert store.item(generated_item_id(ALICE, PLAN.meetings)) is None  # one past the end
    assert store.item(generated_item_id("bob@contoso.test", 0)) is None  # no such mailbox
    assert store.item("not base64 !") is None
    assert parse_generated_id(generated_item_id(ALICE, 9)) == (ALICE, 9)
    for raw in ("aXRlbTpnOmFsaWNlOng=", "aXRlbTpnOjo1", "aXRlbToxOmFi", "A" * 2000):
        assert parse_generated_id(raw) is None, raw


def test_get_item_reaches_only_the_impersonated_mailboxs_meetings() -> None:
    store = MailboxStore()
    store.generate_calendar(ALICE, PLAN)
    store.generate_calendar("bob@contoso.test", PLAN)

    def get(item_id: str) -> ET.Element:
        body = (
            "<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>"
            f"<m:ItemIds><t:ItemId Id='{item_id}'/></m:ItemIds></m:GetItem>"
        )
        return get_item(_context(store), _op(body))

    own = get(generated_item_id(ALICE, 1))
    assert own.findtext(".//m:ResponseCode", namespaces=NS) == "NoError"
    assert own.findtext(".//t:Subject", namespaces=NS) == "Meeting 1"
    for other in (generated_item_id("bob@contoso.test", 1), generated_item_id(ALICE, 99)):
        refused = get(other)
        assert refused.findtext(".//m:ResponseCode", namespaces=NS) == "ErrorItemNotFound"
        assert refused.find(".//t:Subject", NS) is None


def test_a_calendar_with_content_cannot_be_generated() -> None:
    store = MailboxStore()
    store.add_calendar_item(ALICE, subject="Real", start=FIRST, end=FIRST)
    with pytest.raises(StoreLookupError, match=r"calendar of 'alice@contoso.test' already"):
        store.generate_calendar(ALICE, PLAN)
    other = MailboxStore()
    other.generate_calendar(ALICE, PLAN)
    with pytest.raises(StoreLookupError, match="already has content"):
        other.generate_calendar(ALICE, PLAN)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"meetings": -1}, r"meetings -1 must be 0\.\.100000"),
        ({"meetings": MAX_GENERATED_MEETINGS + 1}, r"meetings 100001 must be"),
        ({"first_start": dt.datetime(2027, 1, 4)}, r"first_start .* must be timezone-aware"),
        ({"days": 0}, r"days 0 must be at least 1"),
        ({"keyword_every": -2}, r"keyword_every -2 must be 0 or more"),
        ({"colleagues": 0}, r"colleagues 0 must be at least 1"),
    ],
)
def test_plan_rejections(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"meetings": 5, "first_start": FIRST, **kwargs}
    with pytest.raises(StoreLookupError, match=message):
        GeneratedCalendar(**values)  # type: ignore[arg-type]


def test_a_meeting_outside_the_plan_is_refused() -> None:
    with pytest.raises(StoreLookupError, match=r"meeting 23 is not in 0\.\.22"):
        PLAN.packed(ALICE, 23)
    with pytest.raises(StoreLookupError, match=r"meeting -1 is not in"):
        PLAN.props(ALICE, -1)


def test_thousands_of_generated_mailboxes_cost_little_memory() -> None:
    store = MailboxStore()
    plan = GeneratedCalendar(meetings=260, first_start=FIRST)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(2000):
        store.generate_calendar(f"user{n:05d}@contoso.test", plan)
    per_mailbox = (tracemalloc.get_traced_memory()[0] - before) / 2000
    tracemalloc.stop()
    # A year of stored meetings was ~260 KiB a mailbox; five empty folders are a few KiB.
    assert per_mailbox < 8 * 1024, per_mailbox


def test_exchangelib_pages_writes_and_deletes_generated_meetings(
    emulator: EwsEmulator, client_context: ssl.SSLContext
) -> None:
    emulator.store.generate_calendar(ALICE, PLAN)
    creds = Credentials("CONTOSO\\svc-hybridge", SVC_PASSWORD)
    account = account_for(emulator.ews_url, ALICE, creds, "NTLM", client_context, 10)
    changes = list(account.calendar.sync_items(max_changes_returned=5))
    assert [c[0] for c in changes] == ["create"] * PLAN.meetings
    subjects = [c[1].subject for c in changes]
    assert subjects[:3] == ["Meeting 0 @meet:space & <b>", "Meeting 1", "Meeting 2"]
    state = account.calendar.item_sync_state
    meeting = account.calendar.get(id=changes[1][1].id)
    meeting.subject = "Renamed by the client"
    meeting.save(update_fields=["subject"])
    account.calendar.get(id=changes[2][1].id).delete()
    account.calendar.item_sync_state = state
    again = list(account.calendar.sync_items(max_changes_returned=5))
    assert [(c[0], getattr(c[1], "subject", None)) for c in again] == [
        ("update", "Renamed by the client"),
        ("delete", None),
    ]
    assert emulator.store.item(changes[2][1].id) is None
    account.protocol.close()
