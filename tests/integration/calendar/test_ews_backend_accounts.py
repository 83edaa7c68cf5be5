"""EwsBackend keeps nothing per mailbox: an Account per call over one shared pool, items
fetched with GetItem (no root folder fetched and cached per mailbox), against the emulator."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from exchangelib import Account
from exchangelib.folders import Root
from synckit import START

from hybridge.calendar.errors import MailboxNotFoundError
from hybridge.calendar.ews.transport import account_for
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import MailboxState, SyncEngine
from hybridge.core.meetings import BEGIN_MARKER


def test_each_call_gets_its_own_account_over_one_shared_pool(ews_harness: Any) -> None:
    backend = ews_harness.backend
    alice, bob = ews_harness.mailbox("alice"), ews_harness.mailbox("bob")
    first, again, other = backend.account(alice), backend.account(alice), backend.account(bob)
    assert first is not again and first.identity is not again.identity
    assert first.protocol is again.protocol is other.protocol  # one pool for all
    assert (first.primary_smtp_address, other.primary_smtp_address) == (alice, bob)
    # The copy carries every attribute a new exchangelib Account sets, whatever its version.
    fresh = account_for(
        backend.ews_url,
        alice,
        backend._credentials,
        backend.settings.auth,
        backend._context,
        backend.settings.timeout_seconds,
    )
    assert set(vars(first)) == set(vars(fresh))
    fresh.protocol.close()
    # Nothing keeps it once the call is over.
    gone = weakref.ref(first)
    del first, again
    gc.collect()
    assert gone() is None


def test_sync_and_write_leave_no_account_or_folder_per_mailbox(
    ews_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    mailboxes = [ews_harness.mailbox(u) for u in ("alice", "bob", "carol")]
    ids = {m: ews_harness.add(m, "Review @webex", body="Agenda", start=START) for m in mailboxes}
    engine = SyncEngine(ews_harness.backend, state_store, cloud, trim_heap=False)
    try:
        engine.set_mailboxes(mailboxes)
        outcomes = engine.run_due()
        assert [o.state for o in outcomes] == [MailboxState.IDLE] * 3
        assert sum(o.joins_written for o in outcomes) == 3
        for mailbox, meeting_id in ids.items():
            assert ews_harness.body(mailbox, meeting_id).count(BEGIN_MARKER) == 1
        gc.collect()
        live = [o for o in gc.get_objects() if isinstance(o, Account | Root)]
        # Only the backend's prototype (never used for a call) is left: no cached Account
        # per mailbox, and no root folder tree (Account.fetch would have fetched one each).
        assert live == [ews_harness.backend._prototype]
    finally:
        engine.close()


def test_a_call_for_another_mailbox_is_made_as_that_mailbox(ews_harness: Any) -> None:
    backend = ews_harness.backend
    backend.changes(ews_harness.mailbox("alice"), None, max_changes=10)
    # The impersonation header of each call names its own mailbox, not the prototype's.
    with pytest.raises(MailboxNotFoundError) as caught:
        backend.changes("nobody@contoso.test", None, max_changes=10)
    assert str(caught.value) == "Exchange has no mailbox 'nobody@contoso.test'"
