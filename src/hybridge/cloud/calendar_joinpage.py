"""The public join page: what following a meeting's join URL shows.

``GET /meet/{kind}/{token}`` (``kind`` is ``j`` one-time, ``space`` or ``room`` personal
room; ``calendar_join`` makes the URLs). No login: the URL is the capability, as with the
seed product's meeting links. It is unguessable because its token is 120 bits of an
HMAC-SHA256 under the per-cloud join key (``calendar_join.TOKEN_BYTES``), so the page may
show what an invitee already holds, and nothing more: the subject, the organizer, start and
end in the meeting's own zone, the SIP address to dial from a video system and the meeting
number. Never the attendees, the body, the location, or any other meeting; a personal room
shows only its owner's display name, because one room serves all of its owner's
``:myroom`` meetings and naming one of them would disclose the others.

Lookup. Join details are derived, not stored, but each keyword meeting's row keeps the
``join_url`` it was given (``calendar_meetings.put_meeting``); the page finds the row by
that exact URL, requires its mailbox to be an enabled user still, and derives the details
again with the current key, comparing in constant time, so a row written under an older
key (or a row whose keyword has gone) serves nothing. Consequences: a deleted meeting, a
removed user (whose meetings the cloud forgets at once) and another organisation's token
all give the same 404. A personal room is served while its owner is enabled and has at
least one ``:myroom`` meeting stored — the room's URL is live exactly where it was handed
out.

Unknown and malformed ids get one and the same 404 page (``calendar_join_missing.html``):
the answer must not tell a prober whether a token had the right shape, another kind, or
belonged to a deleted meeting.

Not rate-limited, on purpose: guessing a 120-bit token is hopeless at any rate an HTTP
server can answer, so a limiter would protect nothing, while a per-address counter would
need state shared by every cloud node (and would lock out a whole office behind one NAT
opening the same invitation). Each request costs one SELECT by ``join_url`` and one HMAC;
the column has no index yet (the 0003 migration predates this page), so a large cloud
should add one before exposing the page to the internet — flood protection in general is
the reverse proxy's job, as for the login pages' addresses.

Responses carry ``Cache-Control: no-store`` (a shared cache must not keep a capability
page), ``X-Robots-Tag: noindex`` (a crawler that saw a forwarded invitation must not
publish it) and ``Referrer-Policy: no-referrer`` (the URL must not leak to any link).
"""

# No ``from __future__ import annotations``: FastAPI resolves the route's annotations.
import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hybridge.calendar import wire
from hybridge.calendar.model import zone
from hybridge.calendar.recurrence_text import describe
from hybridge.cloud.calendar_join import join_url_of, parse_join_path
from hybridge.cloud.calendar_meetings import details_for, keyword_from_text
from hybridge.cloud.calendar_models import calendar_meeting, calendar_user
from hybridge.cloud.calendar_service import as_utc
from hybridge.cloud.services import Services
from hybridge.core.meetings import JoinTemplate
from hybridge.web.pages import render

PageKind = Literal["j", "space", "room"]

#: Sent with every answer of this route, found or not (see the module docstring).
HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class MeetingTimes:
    """A meeting's subject and times as its organizer set them (zone-aware)."""

    subject: str
    start: dt.datetime
    end: dt.datetime
    start_tz: str
    end_tz: str
    recurring: bool
    #: The rule in words ("Monthly on the last weekday"), "" when not recurring.
    repeats: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"meeting times must carry their zone: {self.start!r}, {self.end!r}")


def _repeats(document: dict[str, Any]) -> str:
    """The stored meeting's rule in words ("" when none); any wire format decodes."""
    if not document.get("recurrence"):
        return ""
    rule = wire.meeting_from_json(document).recurrence
    return "" if rule is None else describe(rule)


@dataclass(frozen=True)
class JoinPage:
    """What a join page shows: an invitee's view, nothing more.

    ``meeting`` is None for a personal room (``kind == "room"``), which serves all of its
    owner's ``:myroom`` meetings and so names none of them.
    """

    kind: PageKind
    owner_name: str
    organizer: str
    sip_address: str
    meeting_number: str
    meeting: MeetingTimes | None

    def __post_init__(self) -> None:
        if (self.kind == "room") != (self.meeting is None):
            raise ValueError(f"a {self.kind!r} page must show a meeting unless it is a room")


def find_join_page(session: Session, key: bytes, base_url: str, path: str) -> JoinPage | None:
    """The page for ``path`` (after ``/meet/``), or None when nothing live answers to it.

    None covers a malformed path, an unknown token, a deleted meeting, a removed user and
    a row whose URL the current key would not give: the caller shows one 404 for all.
    """
    parsed = parse_join_path(path)
    if parsed is None:
        return None
    kind, token = parsed
    url = join_url_of(base_url, kind, token)
    row = session.execute(
        sa.select(calendar_meeting, calendar_user.c.display_name)
        .join(
            calendar_user,
            sa.and_(
                calendar_user.c.org_id == calendar_meeting.c.org_id,
                calendar_user.c.mailbox == calendar_meeting.c.mailbox,
            ),
        )
        .where(calendar_meeting.c.join_url == url)
        # A room's URL is on many rows; any one identifies the owner (deterministically).
        .order_by(calendar_meeting.c.org_id, calendar_meeting.c.meeting_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    details = details_for(
        row.org_id,
        row.mailbox,
        row.uid,
        row.meeting_id,
        keyword_from_text(row.keyword),
        row.organizer == row.mailbox,
        JoinTemplate(),
        key,
        base_url,
    )
    # Derive again rather than trust the stored URL: a row written under an older key, or
    # one whose keyword or organizer no longer gives this URL, must not answer.
    if details is None or not hmac.compare_digest(details.join_url.encode(), url.encode()):
        return None
    if details.sip_address is None or details.meeting_number is None:
        return None
    times = None
    if kind != "room":
        doc = row.document
        start, end = as_utc(row.start_utc), as_utc(row.end_utc)
        assert start is not None and end is not None  # NOT NULL columns
        times = MeetingTimes(
            subject=row.subject,
            start=start.astimezone(zone(doc["start_tz"])),
            end=end.astimezone(zone(doc["end_tz"])),
            start_tz=doc["start_tz"],
            end_tz=doc["end_tz"],
            recurring=bool(row.recurring),
            repeats=_repeats(doc),
        )
    return JoinPage(
        kind=kind,  # type: ignore[arg-type]  # parse_join_path returns only the three kinds
        owner_name=row.display_name or row.mailbox,
        organizer=row.organizer,
        sip_address=details.sip_address,
        meeting_number=details.meeting_number,
        meeting=times,
    )


def join_page_router(join_key: bytes) -> APIRouter:
    """The public ``/meet/...`` route (no session: the URL is the capability)."""
    router = APIRouter()

    # ``{path:path}`` takes extra segments too, so ``/meet/j/x/y`` gets the same 404 page
    # as an unknown token instead of the app's generic one (no shape oracle).
    @router.get("/meet/{path:path}", include_in_schema=False)
    async def join_page(path: str, request: Request, services: Services) -> Response:
        def work() -> JoinPage | None:
            with services.database.transaction() as session:
                return find_join_page(session, join_key, services.settings.base_url, path)

        page = await run_in_threadpool(work)
        if page is None:
            response = render(
                services.templates,
                request,
                "calendar_join_missing.html",
                {"title": "Meeting not found"},
                status_code=404,
            )
        else:
            response = render(
                services.templates,
                request,
                "calendar_join.html",
                {"title": "Join meeting", "page": page},
            )
        response.headers.update(HEADERS)
        return response

    return router
