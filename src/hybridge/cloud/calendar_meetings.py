"""The calendar service's meetings: each enabled user's meetings list, join details, rooms.

A meeting is stored per (organisation, mailbox, meeting id) as the connector reported it
(calendar.wire JSON without the body), with its keyword and join URL for the lists, and
one row per room mailbox it invites (role ``resource``) for the rooms API. Join details
are derived (``calendar_join``), never stored: the same meeting gets the same details.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.calendar import wire
from hybridge.calendar.model import Meeting, zone
from hybridge.calendar.recurrence_expand import expand
from hybridge.calendar.recurrence_text import describe
from hybridge.cloud.calendar_errors import CalendarInputError
from hybridge.cloud.calendar_join import join_details
from hybridge.cloud.calendar_models import calendar_meeting, calendar_meeting_room
from hybridge.cloud.calendar_service import (
    as_utc,
    delete_room_rows,
    require_enabled,
    template,
)
from hybridge.core.meetings import JoinDetails, JoinTemplate, MeetingError, MeetingKeyword

#: A room device asks for a day or a week; a month bounds the work of one request.
MAX_ROOM_WINDOW = dt.timedelta(days=31)
#: Occurrences of one series listed for a room window (more than a 31-day window of a
#: daily series, moved occurrences included).
MAX_OCCURRENCES = 1100


def _keyword(meeting: Meeting) -> MeetingKeyword | None:
    try:
        return meeting.keyword
    except MeetingError:
        return None  # a body too large to search carries no keyword we act on


def keyword_from_text(text: str | None) -> MeetingKeyword | None:
    """The stored canonical keyword (``@webex:myroom``) back as a MeetingKeyword."""
    if not text:
        return None
    service, _, modifier = text.removeprefix("@").partition(":")
    return MeetingKeyword(service, modifier or None, "subject")  # type: ignore[arg-type]


def details_for(
    org_id: str,
    mailbox: str,
    uid: str,
    meeting_id: str,
    keyword: MeetingKeyword | None,
    organized_here: bool,
    current: JoinTemplate,
    key: bytes,
    base_url: str,
) -> JoinDetails | None:
    """The join details of a meeting, or None (no keyword, or not organised here)."""
    # Only the organizer's copy gets details: an attendee's copy is not theirs to edit, and
    # the meeting's number is the organizer's.
    if keyword is None or not organized_here:
        return None
    return join_details(
        key,
        base_url,
        org_id=org_id,
        mailbox=mailbox,
        uid=uid,
        meeting_id=meeting_id,
        keyword=keyword,
        template=current,
    )


def put_meeting(
    session: Session,
    org_id: str,
    meeting: Meeting,
    *,
    key: bytes,
    base_url: str,
    now: dt.datetime,
) -> JoinDetails | None:
    """Store ``meeting`` in its mailbox's list and return its join details (or None).

    Idempotent: the same meeting again changes nothing but returns the same details
    (rendered with the current template). CalendarNotFound if the mailbox is not ours.
    """
    require_enabled(session, org_id, meeting.mailbox)
    keyword = _keyword(meeting)
    details = details_for(
        org_id,
        meeting.mailbox,
        meeting.uid,
        meeting.meeting_id,
        keyword,
        meeting.organized_here,
        template(session, org_id),
        key,
        base_url,
    )
    document = wire.meeting_to_json(meeting)
    document["body"] = ""  # the list shows no body; the connector keeps it
    values = {
        "version": meeting.version,
        "uid": meeting.uid,
        "organizer": meeting.organizer,
        "subject": meeting.subject,
        "start_utc": meeting.start.astimezone(dt.UTC),
        "end_utc": meeting.end.astimezone(dt.UTC),
        "recurring": meeting.recurrence is not None,
        "attendees_count": len(meeting.attendees),
        "keyword": None if keyword is None else keyword.text,
        "join_url": None if details is None else details.join_url,
        "document": document,
    }
    where = (
        calendar_meeting.c.org_id == org_id,
        calendar_meeting.c.mailbox == meeting.mailbox,
        calendar_meeting.c.meeting_id == meeting.meeting_id,
    )
    row = session.execute(sa.select(calendar_meeting).where(*where)).first()
    if (
        row is not None
        and row.document == document
        and (row.keyword, row.join_url) == (values["keyword"], values["join_url"])
    ):
        return details  # the same meeting twice is one meeting
    if row is None:
        session.execute(
            sa.insert(calendar_meeting).values(
                org_id=org_id,
                mailbox=meeting.mailbox,
                meeting_id=meeting.meeting_id,
                updated_at=now,
                **values,
            )
        )
    else:
        session.execute(sa.update(calendar_meeting).where(*where).values(updated_at=now, **values))
    delete_room_rows(session, org_id, meeting.mailbox, [meeting.meeting_id])
    rooms = sorted({a.address for a in meeting.attendees if a.role == "resource"})
    if rooms:
        session.execute(
            sa.insert(calendar_meeting_room),
            [
                {
                    "org_id": org_id,
                    "room": room,
                    "mailbox": meeting.mailbox,
                    "meeting_id": meeting.meeting_id,
                }
                for room in rooms
            ],
        )
    return details


def delete_meeting(session: Session, org_id: str, mailbox: str, meeting_id: str) -> None:
    """Forget one meeting of ``mailbox`` (nothing happens when it is unknown)."""
    session.execute(
        sa.delete(calendar_meeting).where(
            calendar_meeting.c.org_id == org_id,
            calendar_meeting.c.mailbox == mailbox,
            calendar_meeting.c.meeting_id == meeting_id,
        )
    )
    delete_room_rows(session, org_id, mailbox, [meeting_id])


def retain_meetings(session: Session, org_id: str, mailbox: str, keep: list[str]) -> int:
    """Forget every meeting of ``mailbox`` not in ``keep``; returns how many went."""
    stored = session.execute(
        sa.select(calendar_meeting.c.meeting_id).where(
            calendar_meeting.c.org_id == org_id, calendar_meeting.c.mailbox == mailbox
        )
    ).scalars()
    wanted = set(keep)
    gone = [m for m in stored if m not in wanted]
    # In chunks: SQLite allows at most 32,766 bound parameters per statement.
    for start in range(0, len(gone), 500):
        chunk = gone[start : start + 500]
        session.execute(
            sa.delete(calendar_meeting).where(
                calendar_meeting.c.org_id == org_id,
                calendar_meeting.c.mailbox == mailbox,
                calendar_meeting.c.meeting_id.in_(chunk),
            )
        )
        delete_room_rows(session, org_id, mailbox, chunk)
    return len(gone)


@dataclass(frozen=True)
class MeetingView:
    """One row of a user's meetings list."""

    meeting_id: str
    uid: str
    subject: str
    organizer: str
    start: dt.datetime
    end: dt.datetime
    start_tz: str
    end_tz: str
    recurrence: str | None
    #: The rule in plain English ("Monthly on the last weekday"), None when not recurring.
    repeats: str | None
    attendees: int
    keyword: str | None
    join_url: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "meeting_id": self.meeting_id,
            "uid": self.uid,
            "subject": self.subject,
            "organizer": self.organizer,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "start_tz": self.start_tz,
            "end_tz": self.end_tz,
            "recurrence": self.recurrence,
            "repeats": self.repeats,
            "attendees": self.attendees,
            "keyword": self.keyword,
            "join_url": self.join_url,
        }


def _view(row: Any) -> MeetingView:
    doc = row.document
    start_tz, end_tz = doc["start_tz"], doc["end_tz"]
    rec = doc.get("recurrence")
    # Stored documents of any wire format decode (the first format has no "format").
    meeting = wire.meeting_from_json(doc) if rec else None
    rule = None if meeting is None else meeting.recurrence
    return MeetingView(
        meeting_id=row.meeting_id,
        uid=row.uid,
        subject=row.subject,
        organizer=row.organizer,
        start=as_utc(row.start_utc).astimezone(zone(start_tz)),  # type: ignore[union-attr]
        end=as_utc(row.end_utc).astimezone(zone(end_tz)),  # type: ignore[union-attr]
        start_tz=start_tz,
        end_tz=end_tz,
        recurrence=None if rule is None else rule.rrule,
        repeats=None if rule is None else describe(rule),
        attendees=row.attendees_count,
        keyword=row.keyword,
        join_url=row.join_url,
    )


def meetings_of(session: Session, org_id: str, mailbox: str) -> list[MeetingView]:
    """The meetings list of ``mailbox``, by start (CalendarNotFound if not ours)."""
    require_enabled(session, org_id, mailbox)
    rows = session.execute(
        sa.select(calendar_meeting)
        .where(calendar_meeting.c.org_id == org_id, calendar_meeting.c.mailbox == mailbox)
        .order_by(calendar_meeting.c.start_utc, calendar_meeting.c.meeting_id)
    ).all()
    return [_view(r) for r in rows]


def _occurrences(meeting: Meeting, before: dt.datetime) -> Iterator[dt.datetime]:
    """The meeting's occurrence starts before ``before``, in order (deleted ones left out,
    moved ones at their new time)."""
    if meeting.recurrence is None:
        if meeting.start < before:
            yield meeting.start
        return
    yield from expand(meeting.recurrence, meeting.start, zone(meeting.start_tz), before)


def room_meetings(
    session: Session,
    org_id: str,
    room: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    key: bytes,
    base_url: str,
) -> list[dict[str, Any]]:
    """The occurrences in [start, end) of meetings inviting ``room`` as a resource.

    A meeting seen in several enabled mailboxes (organizer and attendees) is listed once,
    from the organizer's copy when there is one (it carries the join details).
    """
    if end <= start or end - start > MAX_ROOM_WINDOW:
        raise CalendarInputError(
            f"the window {start.isoformat()} .. {end.isoformat()} must be positive and at "
            f"most {MAX_ROOM_WINDOW.days} days",
            field="to",
        )
    # Stored times are UTC (SQLite keeps no offset): compare in UTC.
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    rows = session.execute(
        sa.select(calendar_meeting)
        .join(
            calendar_meeting_room,
            sa.and_(
                calendar_meeting_room.c.org_id == calendar_meeting.c.org_id,
                calendar_meeting_room.c.mailbox == calendar_meeting.c.mailbox,
                calendar_meeting_room.c.meeting_id == calendar_meeting.c.meeting_id,
            ),
        )
        .where(
            calendar_meeting_room.c.org_id == org_id,
            calendar_meeting_room.c.room == room,
            calendar_meeting.c.start_utc < end,
            # A series may run past its first end; single meetings must end after start.
            sa.or_(calendar_meeting.c.recurring, calendar_meeting.c.end_utc > start),
        )
    ).all()
    chosen: dict[str, Any] = {}
    for row in rows:
        name = row.uid or f"{row.mailbox}\x00{row.meeting_id}"
        held = chosen.get(name)
        if held is None or (row.organizer == row.mailbox and held.organizer != held.mailbox):
            chosen[name] = row
    current = template(session, org_id)
    out: list[dict[str, Any]] = []
    for row in chosen.values():
        meeting = wire.meeting_from_json(row.document)
        keyword = keyword_from_text(row.keyword)
        details = details_for(
            org_id,
            row.mailbox,
            row.uid,
            row.meeting_id,
            keyword,
            row.organizer == row.mailbox,
            current,
            key,
            base_url,
        )
        length = meeting.end - meeting.start
        # A modified occurrence keeps its own length.
        modified = meeting.recurrence.modified if meeting.recurrence else ()
        lengths = {m.start.timestamp(): m.end - m.start for m in modified}
        listed = 0
        # Bounded by the window's end: a rule is never expanded further than asked, and
        # a series that began years ago still reaches the window.
        for occurrence in _occurrences(meeting, end):
            span = lengths.get(occurrence.timestamp(), length)
            if occurrence + span <= start:
                continue
            listed += 1
            if listed > MAX_OCCURRENCES:
                break
            out.append(
                {
                    "meeting_id": row.meeting_id,
                    "uid": row.uid,
                    "organizer": row.organizer,
                    "subject": row.subject,
                    "start": occurrence.isoformat(),
                    "end": (occurrence + span).astimezone(zone(meeting.end_tz)).isoformat(),
                    "start_tz": meeting.start_tz,
                    "end_tz": meeting.end_tz,
                    "join_details": None if details is None else wire.join_details_to_json(details),
                }
            )
    out.sort(key=lambda item: (dt.datetime.fromisoformat(item["start"]), item["meeting_id"]))
    return out
