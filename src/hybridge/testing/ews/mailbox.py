"""What the mailbox store holds: mailboxes, folders, log entries, subscriptions, OOF."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from hybridge.testing.ews.errors import StoreLookupError
from hybridge.testing.ews.generated import GeneratedCalendar
from hybridge.testing.ews.itemblob import Item


@dataclass(frozen=True)
class ChangeEvent:
    """One entry of a folder's log: ``kind`` is Created, Modified or Deleted."""

    seq: int
    kind: str
    item_id: str
    folder_id: str
    mailbox: str
    timestamp: dt.datetime


@dataclass(slots=True)
class Folder:
    """A folder: its stored items and change log, plus a generated calendar if it has one.

    With ``generated`` set, meeting k is a virtual Created event at log position k + 1 and
    an item built on demand; ``written`` holds the k already updated (now in ``items``)
    or deleted, which are no longer built.
    """

    folder_id: str
    mailbox: str
    distinguished: str | None
    folder_class: str
    display_name: str
    element: str
    parent_id: str | None
    items: dict[str, Item] = field(default_factory=dict)
    log: list[ChangeEvent] = field(default_factory=list)
    generated: GeneratedCalendar | None = None
    generated_at: dt.datetime | None = None
    written: set[int] = field(default_factory=set)

    @property
    def generated_count(self) -> int:
        return self.generated.meetings if self.generated is not None else 0


@dataclass(slots=True)
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
