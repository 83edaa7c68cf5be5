"""The emulated mailboxes' calendars: events, their series' occurrences, and change order.

Every change to a mailbox bumps its sequence number and stamps the event with it; a deleted
event stays as a tombstone carrying its deletion's number. That ordering is all a delta
query needs (``delta.py``): "what changed after position p" is "events stamped after p".

A recurring event is stored once, as its series master, like Exchange does; calendarView
expands it into occurrences inside the view's window. An occurrence's id is derived from
its master's id and original start, so the same occurrence keeps the same id across
requests, and when it becomes an exception (Exchange's occurrence ids are built the same
way, opaquely). An occurrence that differs from the rule (modified, deleted, cancelled)
is an :class:`Instance` with its own change stamp; Exchange keeps it inside the master, so
it also gives the master a new change key (not a new stamp: its other occurrences did not
change, and calendarView/delta does not list them again).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field, replace
from typing import Literal
from zoneinfo import ZoneInfo

from hybridge.testing.graph.recurrence import DAYS, Pattern

BodyType = Literal["text", "html"]
AttendeeType = Literal["required", "optional", "resource"]
__all__ = ["DAYS", "CalendarStore", "Event", "GraphStoreError", "Instance", "Pattern"]
_MAX_OCCURRENCES = 2000


class GraphStoreError(LookupError):
    """An event or mailbox the store does not hold."""


@dataclass(frozen=True)
class Event:
    """One stored event (a single instance or a series master)."""

    event_id: str
    mailbox: str
    subject: str
    start: dt.datetime  # aware
    end: dt.datetime  # aware
    time_zone: str  # IANA name of the organizer's zone
    body: str = ""
    body_type: BodyType = "text"
    location: str = ""
    organizer: str = ""
    attendees: tuple[tuple[str, AttendeeType], ...] = ()
    pattern: Pattern | None = None
    ical_uid: str = ""
    change_key: str = ""
    seq: int = 0
    deleted: bool = False
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def occurrences(self, until: dt.datetime) -> list[dt.datetime]:
        """Original starts (aware, in ``time_zone``) of the series before ``until``;
        [start] if single.

        The rule runs on the organizer's wall clock, so a 10:00 Berlin meeting stays at
        10:00 local across a DST change (its UTC offset moves).
        """
        tz = ZoneInfo(self.time_zone)
        local = self.start.astimezone(tz)
        if self.pattern is None:
            return [local]
        p = self.pattern
        out: list[dt.datetime] = []
        for day in p.dates(local.date()):
            if len(out) >= _MAX_OCCURRENCES or (p.count is not None and len(out) >= p.count):
                break
            if p.end_date is not None and day > p.end_date:
                break
            when = dt.datetime.combine(day, local.time(), tz)
            if when >= until:
                break
            out.append(when)
        return out


@dataclass(frozen=True)
class Instance:
    """One occurrence of a series that differs from its master's rule: modified (an
    ``exception``), deleted by the organizer, or cancelled in an attendee's copy
    (``isCancelled``). Stamped with its own change sequence, like an event."""

    instance_id: str
    master_id: str
    mailbox: str
    original_start: dt.datetime  # aware, UTC
    start: dt.datetime
    end: dt.datetime
    subject: str | None = None  # None: the master's
    body: str | None = None
    body_type: BodyType | None = None
    location: str | None = None
    change_key: str = ""
    seq: int = 0
    deleted: bool = False
    cancelled: bool = False

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'


def occurrence_id(master_id: str, original_start: dt.datetime) -> str:
    """The stable id of the occurrence of ``master_id`` originally at ``original_start``."""
    stamp = original_start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = f"{master_id}|{stamp}".encode()
    return "OCC" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class CalendarStore:
    """Every mailbox's events; thread-safe (the server runs a thread per connection)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._events: dict[str, Event] = {}
        self._instances: dict[str, Instance] = {}
        self._seq: dict[str, int] = {}

    def ensure_mailbox(self, mailbox: str) -> None:
        with self.lock:
            self._seq.setdefault(mailbox.lower(), 0)

    def has_mailbox(self, mailbox: str) -> bool:
        return mailbox.lower() in self._seq

    def seq(self, mailbox: str) -> int:
        with self.lock:
            return self._seq[mailbox.lower()]

    def _bump(self, mailbox: str) -> int:
        self._seq[mailbox] += 1
        return self._seq[mailbox]

    def add(self, event: Event) -> Event:
        """Store a new event (its id, change key and sequence are assigned here)."""
        with self.lock:
            box = event.mailbox.lower()
            if box not in self._seq:
                raise GraphStoreError(f"no mailbox {box!r}")
            stored = replace(
                event,
                mailbox=box,
                event_id="AAMk" + secrets.token_urlsafe(32),
                change_key=secrets.token_urlsafe(12),
                ical_uid=event.ical_uid
                or f"040000008200E00074C5B7101A82E008{secrets.token_hex(16)}",
                organizer=(event.organizer or box).lower(),
                seq=self._bump(box),
            )
            self._events[stored.event_id] = stored
            return stored

    def get(self, event_id: str, *, include_deleted: bool = False) -> Event:
        with self.lock:
            event = self._events.get(event_id)
            if event is None or (event.deleted and not include_deleted):
                raise GraphStoreError(f"no event {event_id!r}")
            return event

    def update(self, event_id: str, **changes: object) -> Event:
        """Change fields of a live event; a new change key and sequence number."""
        with self.lock:
            event = self.get(event_id)
            updated = replace(
                event,
                **changes,  # type: ignore[arg-type]
                change_key=secrets.token_urlsafe(12),
                seq=self._bump(event.mailbox),
                modified=dt.datetime.now(dt.UTC),
            )
            self._events[event_id] = updated
            if event.pattern is not None and {"pattern", "start"} & set(changes):
                # Exchange drops a series' exceptions when its times or pattern change
                # (Outlook warns that they "will be lost"): they leave the view.
                for instance in list(self._instances.values()):
                    if instance.master_id == event_id and not instance.deleted:
                        self._instances[instance.instance_id] = replace(
                            instance, deleted=True, seq=self._bump(event.mailbox)
                        )
            return updated

    def delete(self, event_id: str) -> None:
        """Delete an event, keeping a tombstone for delta queries."""
        with self.lock:
            event = self.get(event_id)
            self._events[event_id] = replace(event, deleted=True, seq=self._bump(event.mailbox))

    def changed_after(self, mailbox: str, position: int) -> list[Event | Instance]:
        """Events, instances (and tombstones) of ``mailbox`` stamped after ``position``,
        in order."""
        with self.lock:
            box = mailbox.lower()
            found: list[Event | Instance] = [
                e for e in self._events.values() if e.mailbox == box and e.seq > position
            ]
            found += [i for i in self._instances.values() if i.mailbox == box and i.seq > position]
        return sorted(found, key=lambda e: e.seq)

    # -- occurrences ----------------------------------------------------------------------

    def instances_of(self, master_id: str) -> dict[dt.datetime, Instance]:
        """The master's instances by original start (UTC)."""
        with self.lock:
            return {
                i.original_start: i for i in self._instances.values() if i.master_id == master_id
            }

    def instance(self, instance_id: str) -> Instance | None:
        with self.lock:
            return self._instances.get(instance_id)

    def is_occurrence(self, master: Event, original_start: dt.datetime) -> bool:
        """True when ``original_start`` is one of the series' starts."""
        if master.pattern is None:
            return False
        when = original_start.astimezone(dt.UTC)
        starts = master.occurrences(when + dt.timedelta(seconds=1))
        return bool(starts) and starts[-1].astimezone(dt.UTC) == when

    def _instance(self, master_id: str, original_start: dt.datetime) -> tuple[Event, Instance]:
        master = self.get(master_id)
        when = original_start.astimezone(dt.UTC)
        if not self.is_occurrence(master, when):
            raise GraphStoreError(f"{when.isoformat()} is not an occurrence of {master_id!r}")
        found = self._instances.get(occurrence_id(master_id, when))
        if found is not None and found.deleted:
            raise GraphStoreError(f"the occurrence {when.isoformat()} of {master_id!r} is deleted")
        if found is None:
            duration = master.end - master.start
            found = Instance(
                occurrence_id(master_id, when),
                master_id,
                master.mailbox,
                when,
                when,
                when + duration,
            )
        return master, found

    def _save_instance(self, master: Event, instance: Instance) -> Instance:
        stored = replace(
            instance, change_key=secrets.token_urlsafe(12), seq=self._bump(master.mailbox)
        )
        self._instances[stored.instance_id] = stored
        # The master holds its exceptions in Exchange: it has a new change key too.
        self._events[master.event_id] = replace(
            master, change_key=secrets.token_urlsafe(12), modified=dt.datetime.now(dt.UTC)
        )
        return stored

    def modify_occurrence(
        self, master_id: str, original_start: dt.datetime, **changes: object
    ) -> Instance:
        """Make (or change) the exception at ``original_start``: ``subject``, ``body``,
        ``body_type``, ``location``, ``start``, ``end``."""
        with self.lock:
            master, instance = self._instance(master_id, original_start)
            return self._save_instance(master, replace(instance, **changes))  # type: ignore[arg-type]

    def delete_occurrence(self, master_id: str, original_start: dt.datetime) -> Instance:
        """The organizer deletes (cancels) one occurrence: it leaves the series."""
        with self.lock:
            master, instance = self._instance(master_id, original_start)
            return self._save_instance(master, replace(instance, deleted=True))

    def cancel_occurrence(self, master_id: str, original_start: dt.datetime) -> Instance:
        """An attendee's copy after the organizer cancelled the occurrence: it stays, with
        ``isCancelled`` true, until the attendee removes it."""
        with self.lock:
            master, instance = self._instance(master_id, original_start)
            return self._save_instance(master, replace(instance, cancelled=True))

    def live(self, mailbox: str) -> list[Event]:
        with self.lock:
            box = mailbox.lower()
            return [e for e in self._events.values() if e.mailbox == box and not e.deleted]
