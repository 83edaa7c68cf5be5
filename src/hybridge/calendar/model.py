"""The values every calendar backend returns: meetings, their changes and recurrence.

A :class:`Meeting` carries what the cloud's calendar service needs (organizer, subject,
start and end each with its IANA time zone, recurrence, attendees, location, the keyword)
plus the body and a version token, so the connector can write join details back. Times are
aware datetimes *in the meeting's own time zone*: a weekly 10:00 meeting in Europe/Berlin
stays at 10:00 local across a DST change, which a UTC instant alone cannot say.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hybridge.calendar.errors import MeetingValueError

# The recurrence values live in their own module; they are part of this model.
from hybridge.calendar.recurrence import WEEKDAYS as WEEKDAYS
from hybridge.calendar.recurrence import Frequency as Frequency
from hybridge.calendar.recurrence import ModifiedOccurrence as ModifiedOccurrence
from hybridge.calendar.recurrence import Recurrence as Recurrence
from hybridge.calendar.recurrence_expand import expand_first
from hybridge.core.meetings import BodyType, MeetingKeyword, find_keyword, has_join_details

AttendeeRole = Literal["required", "optional", "resource"]
ChangeKind = Literal["upsert", "delete"]


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises MeetingValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MeetingValueError(
            f"time zone {name!r} is not an IANA zone name like 'Europe/Berlin'"
        ) from exc


#: Spellings of UTC that servers use; the model always says "UTC".
_UTC_ALIASES = frozenset({"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Z"})


def canonical_zone(name: str) -> str:
    """``name`` checked as an IANA zone, with UTC's aliases folded into ``UTC``."""
    if name in _UTC_ALIASES:
        return "UTC"
    zone(name)
    return name


@dataclass(frozen=True)
class Attendee:
    """An invited address and whether it is required, optional or a resource (a room)."""

    address: str
    role: AttendeeRole = "required"

    def __post_init__(self) -> None:
        if self.address.count("@") != 1:
            raise MeetingValueError(f"attendee {self.address!r} is not an address like a@b.c")
        if self.role not in ("required", "optional", "resource"):
            raise MeetingValueError(
                f"attendee role {self.role!r} must be required, optional or resource"
            )
        object.__setattr__(self, "address", self.address.lower())


@dataclass(frozen=True)
class Meeting:
    """One calendar item of ``mailbox`` as a backend read it.

    ``meeting_id`` is the backend's id (EWS ItemId, CalDAV resource href), ``version`` its
    change token (EWS ChangeKey, CalDAV ETag). ``start``/``end`` are aware, in ``start_tz`` /
    ``end_tz``.
    """

    mailbox: str
    meeting_id: str
    version: str
    organizer: str
    subject: str
    start: dt.datetime
    end: dt.datetime
    start_tz: str
    end_tz: str
    body: str = ""
    body_type: BodyType = "Text"
    location: str = ""
    attendees: tuple[Attendee, ...] = ()
    recurrence: Recurrence | None = None
    uid: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.meeting_id:
            raise MeetingValueError("meeting_id must not be empty")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MeetingValueError(
                f"meeting {self.meeting_id!r}: start and end must be aware datetimes"
            )
        if self.end < self.start:
            raise MeetingValueError(
                f"meeting {self.meeting_id!r}: end {self.end.isoformat()} is before start "
                f"{self.start.isoformat()}"
            )
        if self.body_type not in ("Text", "HTML"):
            raise MeetingValueError(f"body_type {self.body_type!r} must be Text or HTML")
        object.__setattr__(self, "start_tz", canonical_zone(self.start_tz))
        object.__setattr__(self, "end_tz", canonical_zone(self.end_tz))
        # Plain datetimes in the meeting's zone (a library's datetime subclass, such as
        # exchangelib's EWSDateTime, refuses standard tzinfo objects later on).
        for name, tz in (("start", self.start_tz), ("end", self.end_tz)):
            value: dt.datetime = getattr(self, name)
            object.__setattr__(self, name, dt.datetime.fromtimestamp(value.timestamp(), zone(tz)))
        object.__setattr__(self, "mailbox", self.mailbox.lower())
        object.__setattr__(self, "organizer", self.organizer.lower())

    @property
    def keyword(self) -> MeetingKeyword | None:
        """The organizer's ``@webex``/``@meet`` keyword, or None (see core.meetings)."""
        return find_keyword(self.subject, self.body, self.body_type)

    @property
    def has_join_details(self) -> bool:
        """True when the body already holds our join-details block."""
        return has_join_details(self.body)

    @property
    def organized_here(self) -> bool:
        """True when this mailbox is the organizer's: only that copy is ours to edit."""
        return self.organizer == self.mailbox

    def occurrence_starts(self, limit: int, before: dt.datetime | None = None) -> list[dt.datetime]:
        """The first ``limit`` starts of the series (just ``start`` when not recurring),
        only those before ``before`` when given; deleted occurrences are left out and
        modified ones are at their new start.

        Occurrences keep the wall-clock time in ``start_tz`` (RFC 5545 §3.3.10: the rule
        is applied to local time), so their UTC offset follows DST (see
        ``calendar.recurrence.expand``).
        """
        if self.recurrence is None:
            starts = [self.start] if before is None or self.start < before else []
            return starts[:limit]
        return expand_first(self.recurrence, self.start, zone(self.start_tz), limit, before)


@dataclass(frozen=True)
class Change:
    """One entry of a mailbox's change list: an upserted meeting, or a deleted id."""

    kind: ChangeKind
    meeting_id: str
    meeting: Meeting | None = None

    def __post_init__(self) -> None:
        if (self.kind == "upsert") != (self.meeting is not None):
            raise MeetingValueError(
                f"change {self.kind!r} of {self.meeting_id!r}: an upsert carries the meeting, "
                "a delete does not"
            )


@dataclass(frozen=True)
class ChangePage:
    """Changes after a sync state, the state after them, and whether more are waiting."""

    changes: tuple[Change, ...]
    state: str
    more: bool


@dataclass(frozen=True)
class OutOfOffice:
    """A user's automatic replies as their calendar server reports them.

    ``state`` is ``enabled``, ``scheduled``, ``disabled`` or ``unsupported`` (the backend has
    no such notion, e.g. CalDAV); ``active`` says whether it applies at the time asked.
    """

    state: Literal["enabled", "scheduled", "disabled", "unsupported"]
    active: bool
    reply: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
