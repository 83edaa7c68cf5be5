"""Calendars generated on demand: a year of meetings per mailbox without storing them.

A benchmark needs thousands of mailboxes each holding a year of meetings. Storing every
meeting up front costs minutes of seeding and gigabytes (15,000 x 260 items), yet almost
all of them are only ever read once, by the initial sync. A :class:`GeneratedCalendar` is
the rule that yields meeting ``k`` of a mailbox from the mailbox's address and a seed,
deterministically: the store answers SyncFolderItems, GetItem and FindItem with meetings
built on the fly, and keeps an item only once it is written (updated or deleted).

Generated items have stable ids (``item:g:<mailbox>:<k>``, base64 like every other id)
and change keys, so a client sees one consistent mailbox however often it asks.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from hybridge.testing.ews.errors import StoreLookupError
from hybridge.testing.ews.itemblob import WRAP_CLOSE, WRAP_OPEN, Span
from hybridge.testing.ews.seed import calendar_item_props

#: A generated calendar's Created events take log positions 1..meetings; the store's own
#: sequence starts above them. The bound keeps a plan a benchmark size (a year is ~260).
MAX_GENERATED_MEETINGS = 100_000

_ID_PREFIX = "item:g:"


@dataclass(frozen=True)
class GeneratedCalendar:
    """The rule for a mailbox's generated meetings (the same rule may serve every mailbox).

    Meeting ``k`` of ``meetings`` starts ``k * days // meetings`` days after
    ``first_start``, shifted by 0-7 hours and lasting 30 or 60 minutes as a hash of
    (``seed``, mailbox, ``k``) decides; every ``keyword_every``-th meeting (k = 0,
    keyword_every, ...) has ``keyword`` in its subject (0: none); its one required
    attendee is ``colleague<n>@<the mailbox's domain>`` with n < ``colleagues``.
    Raises StoreLookupError when a bound is out of range or ``first_start`` is naive.
    """

    meetings: int
    first_start: dt.datetime
    days: int = 365
    keyword_every: int = 10
    keyword: str = "@webex"
    colleagues: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.meetings <= MAX_GENERATED_MEETINGS:
            raise StoreLookupError(
                f"meetings {self.meetings!r} must be 0..{MAX_GENERATED_MEETINGS}"
            )
        if self.first_start.tzinfo is None:
            raise StoreLookupError(f"first_start {self.first_start!r} must be timezone-aware")
        if self.days < 1:
            raise StoreLookupError(f"days {self.days!r} must be at least 1")
        if self.keyword_every < 0:
            raise StoreLookupError(f"keyword_every {self.keyword_every!r} must be 0 or more")
        if self.colleagues < 1:
            raise StoreLookupError(f"colleagues {self.colleagues!r} must be at least 1")

    def _values(self, smtp: str, k: int) -> tuple[str, dt.datetime, dt.datetime, str]:
        """Meeting ``k``'s subject, start, end and required attendee."""
        if not 0 <= k < self.meetings:
            raise StoreLookupError(f"meeting {k!r} is not in 0..{self.meetings - 1}")
        digest = hashlib.blake2b(f"{self.seed}|{smtp}|{k}".encode(), digest_size=8).digest()
        mix = int.from_bytes(digest, "big")
        start = self.first_start + dt.timedelta(days=k * self.days // self.meetings, hours=mix % 8)
        end = start + dt.timedelta(minutes=30 if (mix >> 8) % 2 else 60)
        keyword = self.keyword_every and k % self.keyword_every == 0
        subject = f"Meeting {k}" + (f" {self.keyword}" if keyword else "")
        attendee = f"colleague{(mix >> 16) % self.colleagues}@{smtp.rpartition('@')[2]}"
        return subject, start, end, attendee

    def props(self, smtp: str, k: int) -> dict[str, ET.Element]:
        """The ``t:CalendarItem`` properties of meeting ``k`` of mailbox ``smtp``.

        Raises StoreLookupError when ``k`` is not in 0..meetings-1.
        """
        subject, start, end, attendee = self._values(smtp, k)
        return calendar_item_props(
            smtp,
            subject=subject,
            start=start,
            end=end,
            body=_BODY,
            required_attendees=[attendee],
        )

    def packed(self, smtp: str, k: int) -> tuple[bytes, tuple[Span, ...]]:
        """What ``itemblob.pack_props(self.props(smtp, k))`` returns, built from a template.

        Every read of a generated meeting builds it, and building and serializing ~20
        elements then parsing them for the spans cost ~1 ms a meeting; the bytes are the
        same (``test_ews_emulator_generated`` compares them for every meeting of a plan).
        Raises StoreLookupError when ``k`` is not in 0..meetings-1.
        """
        subject, start, end, attendee = self._values(smtp, k)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        parts = (
            ("Subject", f"<t:Subject>{escape(subject)}</t:Subject>"),
            ("Body", f'<t:Body BodyType="Text">{_BODY}</t:Body>'),
            ("Start", f"<t:Start>{start.astimezone(dt.UTC).strftime(stamp)}</t:Start>"),
            ("End", f"<t:End>{end.astimezone(dt.UTC).strftime(stamp)}</t:End>"),
            ("Location", "<t:Location />"),
            ("StartTimeZone", '<t:StartTimeZone Id="UTC" Name="UTC" />'),
            ("EndTimeZone", '<t:EndTimeZone Id="UTC" Name="UTC" />'),
            ("Organizer", _mailbox("Organizer", smtp)),
            ("RequiredAttendees", _mailbox("RequiredAttendees", attendee, "<t:Attendee>")),
            ("IsAllDayEvent", "<t:IsAllDayEvent>false</t:IsAllDayEvent>"),
        )
        chunks = [WRAP_OPEN]
        spans: list[Span] = []
        at = len(WRAP_OPEN)
        for name, text in parts:
            raw = text.encode()
            chunks.append(raw)
            spans.append((name, at, at + len(raw)))
            at += len(raw)
        chunks.append(WRAP_CLOSE)
        return b"".join(chunks), tuple(spans)


_BODY = "Agenda"


def _mailbox(name: str, address: str, wrap: str = "") -> str:
    close = wrap.replace("<", "</") if wrap else ""
    return (
        f"<t:{name}>{wrap}<t:Mailbox><t:EmailAddress>{escape(address)}</t:EmailAddress>"
        f"</t:Mailbox>{close}</t:{name}>"
    )


def generated_item_id(smtp: str, k: int) -> str:
    """The id of meeting ``k`` of ``smtp``'s generated calendar."""
    return base64.b64encode(f"{_ID_PREFIX}{smtp}:{k}".encode()).decode()


def generated_change_key(item_id: str) -> str:
    """The change key a generated item has until it is first written."""
    return base64.b64encode(hashlib.blake2b(item_id.encode(), digest_size=9).digest()).decode()


def parse_generated_id(item_id: str) -> tuple[str, int] | None:
    """(mailbox, k) when ``item_id`` names a generated meeting, else None (any other id)."""
    if len(item_id) > 1024:  # an id is a few dozen bytes; do not decode arbitrary input
        return None
    try:
        raw = base64.b64decode(item_id, validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_ID_PREFIX):
        return None
    smtp, _, index = raw[len(_ID_PREFIX) :].rpartition(":")
    if not smtp or not (index.isascii() and index.isdigit()):
        return None
    return smtp, int(index)
