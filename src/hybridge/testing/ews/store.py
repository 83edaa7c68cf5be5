"""The in-memory mailbox store: folders, calendar items, the change log and subscriptions.

Items keep their EWS properties as the XML elements a client sent (``t:Subject``,
``t:Start``, ``t:RequiredAttendees`` ...), so whatever exchangelib writes it reads back
unchanged; :meth:`MailboxStore.add_calendar_item` builds those elements from Python values
for tests that seed mailboxes.

Every create/update/delete appends an event to the folder's log with a sequence number.
``SyncFolderItems`` states and streaming subscriptions are positions in that log, so a client
that reconnects with its last state misses nothing.
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
from dataclasses import dataclass, field
from xml.parsers import expat

from hybridge.testing.ews.errors import StoreLookupError
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


#: How ``ET.tostring`` opens and closes a ``t:Props`` wrapper whose children use only the
#: types namespace (the prefix is registered by ``soap``).
_WRAP_OPEN = f'<t:Props xmlns:t="{T}">'.encode()
_WRAP_CLOSE = b"</t:Props>"

#: A property's name and its bytes' [start, end) in an item's blob.
Span = tuple[str, int, int]


def _pack(props: dict[str, ET.Element]) -> tuple[bytes, tuple[Span, ...] | None]:
    """Serialize ``props`` under a ``t:Props`` wrapper; also where each property's bytes are.

    The spans let a SyncFolderItems answer copy the requested properties' bytes instead of
    parsing and re-serializing every item (see ``items.item_fragment``).
    """
    wrapper = el(T, "Props")
    wrapper.extend(props.values())
    blob = ET.tostring(wrapper)
    return blob, _spans(blob)


def _spans(blob: bytes) -> tuple[Span, ...] | None:
    """Each top-level property's local name and bytes in ``blob`` (expat's byte offsets).

    ``None`` unless every element below the wrapper is ``t:``-prefixed and declares no
    namespace: only then are a property's bytes valid wherever ``t:`` is declared.
    """
    if not (blob.startswith(_WRAP_OPEN) and blob.endswith(_WRAP_CLOSE)):
        return None
    parser = expat.ParserCreate()
    starts: list[tuple[str, int]] = []
    depth = 0
    portable = True

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, portable
        if depth == 1:
            starts.append((name, parser.CurrentByteIndex))
        if depth >= 1 and (not name.startswith("t:") or any(a.startswith("xmlns") for a in attrs)):
            portable = False
        depth += 1

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(blob, True)
    if not portable:
        return None
    bounds = [at for _, at in starts] + [len(blob) - len(_WRAP_CLOSE)]
    return tuple((name[2:], at, bounds[i + 1]) for i, (name, at) in enumerate(starts))


@dataclass(slots=True)
class Item:
    """One stored item. Its properties are kept serialized (``blob``): a parsed element tree
    costs ~5 KiB per meeting, the bytes under 1 KiB, which is what lets a benchmark hold a
    year of meetings for a thousand mailboxes. ``props`` parses a fresh copy on each access;
    change an item through :meth:`MailboxStore.update_item`. ``spans`` locates each
    property's bytes in the blob (``None``: parse instead).
    """

    item_id: str
    change_key: str
    folder_id: str
    mailbox: str
    item_class: str
    blob: bytes = b""
    spans: tuple[Span, ...] | None = None

    @property
    def props(self) -> dict[str, ET.Element]:
        """Element local name -> element (types namespace), freshly parsed."""
        root = ET.fromstring(self.blob)  # noqa: S314 - bytes we serialized ourselves
        return {child.tag.rsplit("}", 1)[-1]: child for child in root}

    def text(self, name: str) -> str | None:
        """The text of simple property ``name`` (``Subject``, ``Start``...), or None."""
        elem = self.props.get(name)
        return None if elem is None else (elem.text or "")

    def bump(self) -> None:
        self.change_key = base64.b64encode(os.urandom(9)).decode()


@dataclass(frozen=True)
class ChangeEvent:
    """One entry of a folder's log: ``kind`` is Created, Modified or Deleted."""

    seq: int
    kind: str
    item_id: str
    folder_id: str
    mailbox: str
    timestamp: dt.datetime


@dataclass
class Folder:
    folder_id: str
    mailbox: str
    distinguished: str | None
    folder_class: str
    display_name: str
    element: str
    parent_id: str | None
    items: dict[str, Item] = field(default_factory=dict)
    log: list[ChangeEvent] = field(default_factory=list)


@dataclass
class Mailbox:
    smtp: str
    folders: dict[str, Folder] = field(default_factory=dict)
    #: Bumped by :meth:`MailboxStore.invalidate_sync_states`; older states are refused.
    generation: int = 1

    def distinguished(self, name: str) -> Folder | None:
        for folder in self.folders.values():
            if folder.distinguished == name:
                return folder
        return None


@dataclass
class Subscription:
    """A streaming subscription: folders watched and events not yet delivered."""

    subscription_id: str
    mailbox: str
    folder_ids: frozenset[str]
    event_types: frozenset[str]
    owner: str
    pending: list[ChangeEvent] = field(default_factory=list)


@dataclass(frozen=True)
class OofSettings:
    """A mailbox's automatic replies (what GetUserOofSettings returns)."""

    state: str = "Disabled"  # Enabled | Scheduled | Disabled
    internal_reply: str = ""
    external_reply: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    external_audience: str = "All"

    def __post_init__(self) -> None:
        if self.state not in ("Enabled", "Scheduled", "Disabled"):
            raise StoreLookupError(
                f"OOF state {self.state!r} must be Enabled, Scheduled or Disabled"
            )
        if self.state == "Scheduled" and (self.start is None or self.end is None):
            raise StoreLookupError("a Scheduled OOF needs start and end")


class MailboxStore:
    """Thread-safe store of mailboxes; the server and tests share one instance."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._mailboxes: dict[str, Mailbox] = {}
        self._items: dict[str, Item] = {}
        self._folders: dict[str, Folder] = {}
        self._seq = itertools.count(1)
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
        with self._lock:
            return self._items.get(item_id)

    def items(self, folder: Folder) -> list[Item]:
        with self._lock:
            return list(folder.items.values())

    def create_item(self, folder: Folder, item_class: str, props: dict[str, ET.Element]) -> Item:
        """Store a new item in ``folder`` and log a Created event."""
        with self._lock:
            blob, spans = _pack(props)
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
            props = item.props
            for name, value in changes.items():
                if value is None:
                    props.pop(name, None)
                else:
                    props[name] = value
            item.blob, item.spans = _pack(props)
            item.bump()
            folder = self._folders[item.folder_id]
            self._record(folder, "Modified", item.item_id)
            return item

    def delete_item(self, item: Item) -> None:
        """Remove ``item`` and log a Deleted event."""
        with self._lock:
            folder = self._folders[item.folder_id]
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
            return folder.log[-1].seq if folder.log else 0

    def encode_state(self, folder: Folder, seq: int) -> str:
        """An opaque SyncState for position ``seq`` of ``folder``'s log."""
        return self._states.encode(folder.folder_id, self.mailbox(folder.mailbox).generation, seq)

    def decode_state(self, folder: Folder, state: str) -> int:
        """Return the log position of ``state``; raises InvalidSyncState."""
        generation = self.mailbox(folder.mailbox).generation
        return self._states.decode(state, folder.folder_id, generation)

    def events_after(self, folder: Folder, seq: int) -> list[ChangeEvent]:
        with self._lock:
            # The log is in sequence order: start from the first later entry.
            return folder.log[bisect.bisect_right(folder.log, seq, key=lambda e: e.seq) :]

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
