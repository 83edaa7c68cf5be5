"""exchangelib, unmodified, as the emulator's client: items, sync and streaming."""

from __future__ import annotations

import datetime as dt
import ssl
import threading

from ews_soap_requests import SVC_PASSWORD
from exchangelib import Account, CalendarItem, Credentials, EWSDateTime, EWSTimeZone

from hybridge.calendar.ews.transport import account_for
from hybridge.testing.ews import EwsEmulator, OofSettings


def _account(emulator: EwsEmulator, ctx: ssl.SSLContext, auth: str = "NTLM") -> Account:
    creds = Credentials("CONTOSO\\svc-hybridge", SVC_PASSWORD)
    return account_for(emulator.ews_url, "alice@contoso.test", creds, auth, ctx, 10)


def test_create_get_update_delete_and_sync(
    emulator: EwsEmulator, client_context: ssl.SSLContext
) -> None:
    account = _account(emulator, client_context)
    tz = EWSTimeZone("Europe/Berlin")
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Design review @webex",
        start=EWSDateTime(2026, 12, 2, 9, tzinfo=tz),
        end=EWSDateTime(2026, 12, 2, 10, tzinfo=tz),
        location="Room 1",
        required_attendees=["bob@contoso.test"],
    )
    item.save()
    got = account.calendar.get(id=item.id)
    assert got.subject == "Design review @webex"
    assert got.start == EWSDateTime(2026, 12, 2, 8, tzinfo=EWSTimeZone("UTC"))
    assert got.location == "Room 1"
    assert [a.mailbox.email_address for a in got.required_attendees] == ["bob@contoso.test"]
    changes = list(account.calendar.sync_items(max_changes_returned=1))
    assert [c[0] for c in changes] == ["create"]
    got.subject = "Design review (moved)"
    got.save(update_fields=["subject"])
    assert emulator.store.item(item.id).text("Subject") == "Design review (moved)"
    changes = list(account.calendar.sync_items())
    assert [(c[0], c[1].subject) for c in changes] == [("update", "Design review (moved)")]
    got.delete()
    assert [c[0] for c in account.calendar.sync_items()] == ["delete"]
    account.protocol.close()


def test_streaming_notifications(emulator: EwsEmulator, client_context: ssl.SSLContext) -> None:
    account = _account(emulator, client_context, auth="Basic")
    calendar = account.calendar
    subscription_id = calendar.subscribe_to_streaming()
    t0 = dt.datetime(2026, 12, 3, 9, tzinfo=dt.UTC)

    def add(subject: str) -> None:
        emulator.store.add_calendar_item(
            "alice@contoso.test", subject=subject, start=t0, end=t0 + dt.timedelta(hours=1)
        )

    add("between subscribe and stream")  # queued on the subscription, not lost
    timer = threading.Timer(0.1, add, args=("while streaming",))
    timer.start()
    created = []
    # ConnectionTimeout 2 "minutes" is 2 s here (streaming_minute_seconds=1.0); the stream
    # then ends with ConnectionStatus Closed, which ends exchangelib's iterator.
    for notification in calendar.get_streaming_events(subscription_id, connection_timeout=2):
        created.extend(
            e.item_id.id for e in notification.events if type(e).__name__ == "CreatedEvent"
        )
    timer.join()
    subjects = {emulator.store.item(i).text("Subject") for i in created}  # type: ignore[union-attr]
    assert subjects == {"between subscribe and stream", "while streaming"}
    calendar.unsubscribe(subscription_id)
    assert emulator.store.subscription(subscription_id) is None
    account.protocol.close()


def test_out_of_office_is_read_through_impersonation(
    emulator: EwsEmulator, client_context: ssl.SSLContext
) -> None:
    account = _account(emulator, client_context)
    assert account.oof_settings.state == "Disabled"
    start = dt.datetime(2026, 12, 20, tzinfo=dt.UTC)
    emulator.store.set_oof(
        "alice@contoso.test",
        OofSettings("Scheduled", "Back in January", "Away", start, start + dt.timedelta(days=14)),
    )
    oof = account.oof_settings
    assert (oof.state, oof.internal_reply, oof.start) == (
        "Scheduled",
        "Back in January",
        EWSDateTime(2026, 12, 20, tzinfo=EWSTimeZone("UTC")),
    )
    account.protocol.close()
