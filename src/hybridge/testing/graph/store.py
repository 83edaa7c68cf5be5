"""The emulated mailboxes' calendars: events, their series' occurrences, and change order.

Every change to a mailbox bumps its sequence number and stamps the event with it; a deleted
event stays as a tombstone carrying its deletion's number. That ordering is all a delta
query needs (``delta.py``): "what changed after position p" is "events stamped after p".

A recurring event is stored once, as its series master, like Exchange does; calendarView
expands it into occurrences inside the view's window. An occurrence's id is derived from
its master's id and original start, so the same occurrence keeps the same id across
requests (Exchange's occurrence ids are built the same way, opaquely).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field, replace
from typing import Literal
from zoneinfo import ZoneInfo

BodyType = Literal["text", "html"]
AttendeeType = Literal["required", "optional", "resource"]
#: Graph's dayOfWeek values, Monday first (``datetime.weekday()`` order).
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MAX_OCCURRENCES = 2000


class GraphStoreError(LookupError):
    """An event or mailbox the store does not hold."""


@dataclass(frozen=True)
class Pattern:
    """A Graph recurrence: ``daily`` or ``weekly`` on ``days``, ending by count or date."""

    type: Literal["daily", "weekly"]
    interval: int = 1
    days: tuple[str, ...] = ()
    end_date: dt.date | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ("daily", "weekly") or self.interval < 1:
            raise ValueError(f"pattern {self.type!r}/{self.interval!r} is not daily/weekly >= 1")
        bad = [d for d in self.days if d not in DAYS]
        if bad:
            raise ValueError(f"days {bad!r} must be among {DAYS}")


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
        """Starts (aware, in ``time_zone``) of the series up to ``until``; [start] if single.

        The rule runs on the organizer's wall clock, so a 10:00 Berlin meeting stays at
        10:00 local across a DST change (its UTC offset moves).
        """
        tz = ZoneInfo(self.time_zone)
        local = self.start.astimezone(tz).replace(tzinfo=None)
        if self.pattern is None:
            return [local.replace(tzinfo=tz)]
        p = self.pattern
        out: list[dt.datetime] = []
        if p.type == "daily":
            step, cursor, offsets = dt.timedelta(days=p.interval), local, [0]
        else:
            step = dt.timedelta(days=7 * p.interval)
            cursor = local - dt.timedelta(days=local.weekday())
            days = p.days or (DAYS[local.weekday()],)
            offsets = sorted(DAYS.index(d) for d in days)
        while len(out) < _MAX_OCCURRENCES:
            for offset in offsets:
                when = cursor + dt.timedelta(days=offset)
                if when < local:
                    continue
                if p.count is not None and len(out) >= p.count:
                    return out
                if p.end_date is not None and when.date() > p.end_date:
                    return out
                aware = when.replace(tzinfo=tz)
                if aware >= until:
                    return out
                out.append(aware)
            cursor += step
        return out


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
            return updated

    def delete(self, event_id: str) -> None:
        """Delete an event, keeping a tombstone for delta queries."""
        with self.lock:
            event = self.get(event_id)
            self._events[event_id] = replace(event, deleted=True, seq=self._bump(event.mailbox))

    def changed_after(self, mailbox: str, position: int) -> list[Event]:
        """Events (and tombstones) of ``mailbox`` stamped after ``position``, in order."""
        with self.lock:
            box = mailbox.lower()
            found = [e for e in self._events.values() if e.mailbox == box and e.seq > position]
        return sorted(found, key=lambda e: e.seq)

    def live(self, mailbox: str) -> list[Event]:
        with self.lock:
            box = mailbox.lower()
            return [e for e in self._events.values() if e.mailbox == box and not e.deleted]
