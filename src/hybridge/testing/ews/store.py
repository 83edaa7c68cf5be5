"""The in-memory mailbox store: folders, calendar items, the change log and subscriptions.

Items keep their EWS properties as the XML elements a client sent (``t:Subject``,
``t:Start``, ``t:RequiredAttendees`` ...), so whatever exchangelib writes it reads back
unchanged; :meth:`MailboxStore.add_calendar_item` builds those elements from Python values
for tests that seed mailboxes.

Every create/update/delete appends an event to the folder's log with a sequence number.
``SyncFolderItems`` states and streaming subscriptions are positions in that log, so a client
that reconnects with its last state misses nothing.

A calendar may instead start from a :class:`~hybridge.testing.ews.generated.GeneratedCalendar`
(:meth:`MailboxStore.generate_calendar`): its meetings are virtual Created events at log
positions 1..N, built when read and stored only once written, so that a benchmark's
15,000 mailboxes x a year of meetings need neither seeding time nor gigabytes. Every
operation sees exactly what it would if those meetings had been added one by one.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import itertools
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from hybridge.testing.ews.errors import StoreLookupError
from hybridge.testing.ews.generated import (
    MAX_GENERATED_MEETINGS,
    GeneratedCalendar,
    generated_change_key,
    generated_item_id,
    parse_generated_id,
)
from hybridge.testing.ews.itemblob import Item, pack_props
from hybridge.testing.ews.mailbox import (
    ChangeEvent,
    Folder,
    Mailbox,
    OofSettings,
    Subscription,
)
from hybridge.testing.ews.seed import calendar_item_props
from hybridge.testing.ews.soap import T, el
from hybridge.testing.ews.syncstate import SyncStateCodec

#: Distinguished folders every mailbox has, parents first:
#: id -> (folder class, display name, EWS element, parent distinguished id).
DISTINGUISHED = {
    "root": ("", "", "Folder", None),
    "msgfolderroot": ("IPF.Note", "Top of Information Store", "Folder", "root"),
    "calendar": ("IPF.Appointment", "Calendar", "CalendarFolder", "msgfolderroot"),
    "inbox": ("IPF.Note", "Inbox", "Folder", "msgfolderroot"),
    "deleteditems": ("IPF.Note", "Deleted Items", "Folder", "msgfolderroot"),
}

_ids = itertools.count(1)


def _new_id(kind: str) -> str:
    # Exchange ids are opaque base64; ours carry a readable prefix to ease debugging.
    raw = f"{kind}:{next(_ids)}:{os.urandom(6).hex()}".encode()
    return base64.b64encode(raw).decode()


class MailboxStore:
    """Thread-safe store of mailboxes; the server and tests share one instance."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._mailboxes: dict[str, Mailbox] = {}
        self._items: dict[str, Item] = {}
        self._folders: dict[str, Folder] = {}
        # Log positions 1..MAX_GENERATED_MEETINGS belong to generated calendars.
        self._seq = itertools.count(MAX_GENERATED_MEETINGS + 1)
        self._subscriptions: dict[str, Subscription] = {}
        # folder id -> its subscriptions: recording a change is O(watchers), not O(all).
        self._watchers: dict[str, list[Subscription]] = {}
        self._oof: dict[str, OofSettings] = {}
        self._states = SyncStateCodec(os.urandom(32))

    # -- mailboxes and folders --------------------------------------------------------------

    def ensure_mailbox(self, smtp: str) -> Mailbox:
        """Return mailbox ``smtp``, creating it with its distinguished folders if needed."""
        key = smtp.lower()
        with self._lock:
            box = self._mailboxes.get(key)
            if box is not None:
                return box
            box = Mailbox(smtp=key)
            ids: dict[str, str] = {}
            for name, (cls, display, element, parent_name) in DISTINGUISHED.items():
                fid = ids[name] = _new_id("folder")
                parent = ids[parent_name] if parent_name else None
                folder = Folder(fid, key, name, cls, display, element, parent)
                box.folders[fid] = folder
                self._folders[fid] = folder
            self._mailboxes[key] = box
            return box

    def mailbox(self, smtp: str) -> Mailbox:
        """Return an existing mailbox; raises StoreLookupError."""
        with self._lock:
            box = self._mailboxes.get(smtp.lower())
        if box is None:
            raise StoreLookupError(f"no mailbox {smtp!r} in the store")
        return box

    def folder(self, folder_id: str) -> Folder | None:
        with self._lock:
            return self._folders.get(folder_id)

    def calendar(self, smtp: str) -> Folder:
        folder = self.ensure_mailbox(smtp).distinguished("calendar")
        assert folder is not None
        return folder

    # -- items ------------------------------------------------------------------------------

    def item(self, item_id: str) -> Item | None:
        """The item with id ``item_id`` (a generated meeting is built), or None."""
        with self._lock:
            found = self._items.get(item_id)
            if found is not None:
                return found
            where = self._generated_slot(item_id)
            if where is None:
                return None
            folder, k = where
            return None if k in folder.written else self._build(folder, k)

    def items(self, folder: Folder) -> list[Item]:
        """The folder's items in the order they were created."""
        with self._lock:
            if folder.generated is None:
                return list(folder.items.values())
            built: list[Item] = []
            for k in range(folder.generated.meetings):
                if k not in folder.written:
                    built.append(self._build(folder, k))
                elif (kept := folder.items.get(generated_item_id(folder.mailbox, k))) is not None:
                    built.append(kept)
            stored = [i for i in folder.items.values() if parse_generated_id(i.item_id) is None]
            return built + stored

    def item_count(self, folder: Folder) -> int:
        """How many items ``items(folder)`` would return, without building any."""
        with self._lock:
            # Written generated meetings are either stored (counted in items) or deleted.
            return len(folder.items) + folder.generated_count - len(folder.written)

    def generate_calendar(self, smtp: str, plan: GeneratedCalendar) -> Folder:
        """Give mailbox ``smtp`` (created if needed) the calendar ``plan`` describes.

        Its meetings behave as if added one by one now, before any other change; none is
        stored until a client or test writes it. Raises StoreLookupError when the calendar
        already has items or changes.
        """
        with self._lock:
            folder = self.calendar(smtp)
            if folder.items or folder.log or folder.generated is not None:
                raise StoreLookupError(
                    f"calendar of {smtp!r} already has content; generate it on a new mailbox"
                )
            folder.generated = plan
            folder.generated_at = dt.datetime.now(dt.UTC)
            return folder

    def _generated_slot(self, item_id: str) -> tuple[Folder, int] | None:
        """The calendar and index of generated meeting ``item_id``, if it exists."""
        parsed = parse_generated_id(item_id)
        if parsed is None:
            return None
        smtp, k = parsed
        box = self._mailboxes.get(smtp)
        folder = box.distinguished("calendar") if box is not None else None
        if folder is None or not 0 <= k < folder.generated_count:
            return None
        return folder, k

    def _build(self, folder: Folder, k: int) -> Item:
        assert folder.generated is not None
        item_id = generated_item_id(folder.mailbox, k)
        blob, spans = folder.generated.packed(folder.mailbox, k)
        return Item(
            item_id,
            generated_change_key(item_id),
            folder.folder_id,
            folder.mailbox,
            "IPM.Appointment",
            blob,
            spans,
        )

    def _take_generated(self, item: Item) -> int | None:
        """Mark a generated meeting as written (no longer built); its index, or None."""
        where = self._generated_slot(item.item_id)
        if where is None or where[1] in where[0].written:
            return None
        where[0].written.add(where[1])
        return where[1]

    def create_item(self, folder: Folder, item_class: str, props: dict[str, ET.Element]) -> Item:
        """Store a new item in ``folder`` and log a Created event."""
        with self._lock:
            blob, spans = pack_props(props)
            item = Item(
                _new_id("item"), "", folder.folder_id, folder.mailbox, item_class, blob, spans
            )
            item.bump()
            folder.items[item.item_id] = item
            self._items[item.item_id] = item
            self._record(folder, "Created", item.item_id)
            return item

    def update_item(self, item: Item, changes: dict[str, ET.Element | None]) -> Item:
        """Set (element) or delete (None) properties of ``item``; logs a Modified event."""
        with self._lock:
            folder = self._folders[item.folder_id]
            if self._take_generated(item) is not None:
                # First write to a generated meeting: from now on it is stored.
                folder.items[item.item_id] = item
                self._items[item.item_id] = item
            # Two requests may each have built the same generated meeting: both must change
            # the one stored copy, as they would change the one item of a seeded mailbox.
            item = self._items.get(item.item_id, item)
            props = item.props
            for name, value in changes.items():
                if value is None:
                    props.pop(name, None)
                else:
                    props[name] = value
            item.blob, item.spans = pack_props(props)
            item.bump()
            self._record(folder, "Modified", item.item_id)
            return item

    def delete_item(self, item: Item) -> None:
        """Remove ``item`` and log a Deleted event."""
        with self._lock:
            folder = self._folders[item.folder_id]
            self._take_generated(item)
            folder.items.pop(item.item_id, None)
            self._items.pop(item.item_id, None)
            self._record(folder, "Deleted", item.item_id)

    def _record(self, folder: Folder, kind: str, item_id: str) -> None:
        event = ChangeEvent(
            next(self._seq),
            kind,
            item_id,
            folder.folder_id,
            folder.mailbox,
            dt.datetime.now(dt.UTC),
        )
        folder.log.append(event)
        for sub_ in self._watchers.get(folder.folder_id, ()):
            if kind in sub_.event_types:
                sub_.pending.append(event)
        self.changed.notify_all()

    # -- the Python API for tests -----------------------------------------------------------

    def add_calendar_item(
        self,
        smtp: str,
        *,
        subject: str,
        start: dt.datetime,
        end: dt.datetime,
        timezone: str = "UTC",
        body: str = "",
        location: str = "",
        organizer: str | None = None,
        required_attendees: Iterable[str] = (),
        optional_attendees: Iterable[str] = (),
        recurrence_weekly_days: Iterable[str] = (),
    ) -> Item:
        """Seed a meeting in mailbox ``smtp``'s calendar; ``start``/``end`` are aware datetimes.

        ``timezone`` is a Windows time zone id (``W. Europe Standard Time``), as EWS carries
        it; ``recurrence_weekly_days`` (``Monday``...) makes a weekly series with no end.
        """
        props = calendar_item_props(
            smtp,
            subject=subject,
            start=start,
            end=end,
            timezone=timezone,
            body=body,
            location=location,
            organizer=organizer,
            required_attendees=required_attendees,
            optional_attendees=optional_attendees,
            recurrence_weekly_days=recurrence_weekly_days,
        )
        return self.create_item(self.calendar(smtp), "IPM.Appointment", props)

    def set_subject(self, item_id: str, subject: str) -> Item:
        """Change an item's subject as another client would (logs a Modified event)."""
        item = self.item(item_id)
        if item is None:
            raise StoreLookupError(f"no item {item_id!r}")
        return self.update_item(item, {"Subject": el(T, "Subject", subject)})

    def remove(self, item_id: str) -> None:
        """Delete an item as another client would (logs a Deleted event)."""
        item = self.item(item_id)
        if item is None:
            raise StoreLookupError(f"no item {item_id!r}")
        self.delete_item(item)

    def set_oof(self, smtp: str, settings: OofSettings) -> None:
        """Set mailbox ``smtp``'s automatic replies, as its owner would in Outlook."""
        with self._lock:
            self._oof[smtp.lower()] = settings

    def oof(self, smtp: str) -> OofSettings:
        """The mailbox's automatic replies (Disabled unless set)."""
        with self._lock:
            return self._oof.get(smtp.lower(), OofSettings())

    def invalidate_sync_states(self, smtp: str) -> None:
        """Make every sync state issued for ``smtp`` invalid (ErrorInvalidSyncStateData)."""
        with self._lock:
            self.mailbox(smtp).generation += 1

    # -- sync states ------------------------------------------------------------------------

    def current_seq(self, folder: Folder) -> int:
        with self._lock:
            return folder.log[-1].seq if folder.log else folder.generated_count

    def encode_state(self, folder: Folder, seq: int) -> str:
        """An opaque SyncState for position ``seq`` of ``folder``'s log."""
        return self._states.encode(folder.folder_id, self.mailbox(folder.mailbox).generation, seq)

    def decode_state(self, folder: Folder, state: str) -> int:
        """Return the log position of ``state``; raises InvalidSyncState."""
        generation = self.mailbox(folder.mailbox).generation
        return self._states.decode(state, folder.folder_id, generation)

    def events_after(self, folder: Folder, seq: int, limit: int | None = None) -> list[ChangeEvent]:
        """The folder's log entries after position ``seq``, at most ``limit`` of them."""
        with self._lock:
            virtual: list[ChangeEvent] = []
            if folder.generated is not None and seq < folder.generated.meetings:
                assert folder.generated_at is not None
                stop = folder.generated.meetings
                if limit is not None:
                    stop = min(stop, max(seq, 0) + limit)
                virtual = [
                    ChangeEvent(
                        k + 1,
                        "Created",
                        generated_item_id(folder.mailbox, k),
                        folder.folder_id,
                        folder.mailbox,
                        folder.generated_at,
                    )
                    for k in range(max(seq, 0), stop)
                ]
            # The log is in sequence order (generated positions first): start from the
            # first later entry.
            at = bisect.bisect_right(folder.log, seq, key=lambda e: e.seq)
            if limit is None:
                return virtual + folder.log[at:]
            return virtual + folder.log[at : at + max(0, limit - len(virtual))]

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(
        self, mailbox: str, folder_ids: Iterable[str], event_types: Iterable[str], owner: str
    ) -> Subscription:
        with self._lock:
            sub_ = Subscription(
                _new_id("subscription"),
                mailbox.lower(),
                frozenset(folder_ids),
                frozenset(event_types),
                owner,
            )
            self._subscriptions[sub_.subscription_id] = sub_
            for fid in sub_.folder_ids:
                self._watchers.setdefault(fid, []).append(sub_)
            return sub_

    def subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def unsubscribe(self, subscription_id: str) -> bool:
        with self._lock:
            found = self._subscriptions.pop(subscription_id, None)
            if found is not None:
                for fid in found.folder_ids:
                    self._watchers[fid].remove(found)
            self.changed.notify_all()
            return found is not None

    def take_events(self, subscription_ids: Iterable[str]) -> list[tuple[str, list[ChangeEvent]]]:
        """Pop the pending events of each subscription (lock must not be needed by caller)."""
        out = []
        with self._lock:
            for sid in subscription_ids:
                sub_ = self._subscriptions.get(sid)
                if sub_ is not None and sub_.pending:
                    out.append((sid, sub_.pending))
                    sub_.pending = []
        return out
