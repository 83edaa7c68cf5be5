"""EWS series over the wire: the emulator (exchangelib unmodified as its client, NTLM and
TLS) holds a monthly master with a modified and a deleted occurrence; GetItem with the
connector's fields brings the pattern and both occurrence lists, and
``ews.recurrence.recurrence_from_item`` makes them the model's rule with its exceptions.

(The sync path's ``meeting_from_item`` lives in ews/backend.py, which does not call it yet:
see ``EWS_NOT_WIRED`` in test_sync_contract.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from hybridge.calendar.ews.recurrence import recurrence_from_item
from hybridge.calendar.model import ModifiedOccurrence, Recurrence
from hybridge.calendar.recurrence_expand import expand_first
from hybridge.testing.ews.soap import T, el, sub

BERLIN = ZoneInfo("Europe/Berlin")


def _occurrence_lists() -> dict[str, Any]:
    modified = el(T, "ModifiedOccurrences")
    occurrence = sub(modified, T, "Occurrence")
    sub(occurrence, T, "ItemId", None, Id="AAMkOccurrence1", ChangeKey="CQAAAA==")
    sub(occurrence, T, "Start", "2027-04-29T13:00:00Z")
    sub(occurrence, T, "End", "2027-04-29T14:00:00Z")
    sub(occurrence, T, "OriginalStart", "2027-04-30T15:00:00Z")
    deleted = el(T, "DeletedOccurrences")
    sub(sub(deleted, T, "DeletedOccurrence"), T, "Start", "2027-03-31T15:00:00Z")
    return {"ModifiedOccurrences": modified, "DeletedOccurrences": deleted}


def test_a_monthly_master_with_its_exceptions_maps_over_getitem(ews_harness: Any) -> None:
    alice = ews_harness.mailbox("alice")
    start = dt.datetime(2027, 1, 29, 16, 0, tzinfo=dt.UTC)
    mid = ews_harness.add(
        alice, "Month close", start=start, tz="Europe/Berlin", last_weekday_of_month=6
    )
    store = ews_harness.emulator.store
    store.update_item(store.item(mid), _occurrence_lists())
    backend = ews_harness.backend
    item = backend._fetch(backend.account(alice), alice, mid, backend._fields)
    rule = recurrence_from_item(item)
    assert rule == Recurrence(
        "MONTHLY",
        by_day=("MO", "TU", "WE", "TH", "FR"),
        by_set_pos=(-1,),
        count=6,
        exdates=(dt.datetime(2027, 3, 31, 15, tzinfo=dt.UTC),),
        modified=(
            ModifiedOccurrence(
                dt.datetime(2027, 4, 30, 15, tzinfo=dt.UTC),
                dt.datetime(2027, 4, 29, 13, tzinfo=dt.UTC),
                dt.datetime(2027, 4, 29, 14, tzinfo=dt.UTC),
            ),
        ),
    )
    meeting = backend.read(alice, mid)
    assert meeting.start_tz == "Europe/Berlin"
    starts = expand_first(rule, meeting.start, BERLIN, 10)
    assert [(s.month, s.day, s.hour) for s in starts] == [
        (1, 29, 17),
        (2, 26, 17),
        (4, 29, 15),
        (5, 31, 17),
        (6, 30, 17),
    ]
