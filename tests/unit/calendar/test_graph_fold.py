"""How a delta page's items become meeting changes (no server: single events need none)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from hybridge.calendar.graph import GraphBackend, GraphSettings
from hybridge.vault.secret import Secret


@pytest.fixture
def backend() -> Iterator[GraphBackend]:
    settings = GraphSettings(
        tenant_id="8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        client_id="3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c",
        test_mailbox="alice@contoso.test",
        client_secret=Secret.from_text("x"),
    )
    b = GraphBackend(settings, ssl_context=ssl.create_default_context())
    yield b
    b.close()


def event(event_id: str, subject: str = "s") -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "singleInstance",
        "subject": subject,
        "start": {"dateTime": "2027-01-11T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2027-01-11T10:00:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "UTC",
    }


def removed(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "@removed": {"reason": "deleted"}}


def test_last_entry_for_an_id_wins(backend: GraphBackend) -> None:
    # Graph may list an updated event as removed and then present again, or the reverse.
    items = [removed("a"), event("a", "back"), event("b"), removed("b"), event("c")]
    changes, series = backend._fold("alice@contoso.test", items, {})
    assert [(c.kind, c.meeting_id) for c in changes] == [
        ("upsert", "a"),
        ("delete", "b"),
        ("upsert", "c"),
    ]
    assert changes[0].meeting is not None and changes[0].meeting.subject == "back"
    assert series == {}


def test_duplicate_entries_give_one_change(backend: GraphBackend) -> None:
    changes, _ = backend._fold("alice@contoso.test", [event("a", "1"), event("a", "2")], {})
    assert [(c.kind, c.meeting_id, c.meeting.subject if c.meeting else "") for c in changes] == [
        ("upsert", "a", "2")
    ]


def test_unmappable_event_is_skipped_not_fatal(backend: GraphBackend) -> None:
    bad = {**event("x"), "start": {"timeZone": "UTC"}}
    changes, _ = backend._fold("alice@contoso.test", [bad, event("y"), {"no": "id"}], {})
    assert [c.meeting_id for c in changes] == ["y"]
    # Skipped, but not silently: flagged until the event maps or goes.
    assert backend.unmapped("alice@contoso.test") == {
        "x": ("not delivered: dateTimeTimeZone {'timeZone': 'UTC'} has no dateTime",)
    }
    backend._fold("alice@contoso.test", [event("x")], {})
    assert backend.unmapped("alice@contoso.test") == {}


def test_exceptions_are_meetings_and_cancelled_instances_deletes(backend: GraphBackend) -> None:
    exception = {**event("occ1", "moved"), "type": "exception", "seriesMasterId": "m"}
    cancelled = {**event("occ2"), "type": "exception", "seriesMasterId": "m", "isCancelled": True}
    changes, series = backend._fold("alice@contoso.test", [exception, cancelled], {})
    assert [(c.kind, c.meeting_id) for c in changes] == [("upsert", "occ1"), ("delete", "occ2")]
    assert changes[0].meeting is not None and changes[0].meeting.recurrence is None
    assert series == {}
