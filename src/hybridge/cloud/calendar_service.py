"""The calendar service's logic on the database: enabled users, their status, the template.

Every function takes the SQLAlchemy session of the caller's transaction and the caller's
``org_id``; every query filters on it (tenancy: a connector or an admin reaches only their
own organisation's users and meetings). Routes (``calendar_api``, ``calendar_portal``)
authenticate and translate; this module and ``calendar_meetings`` decide.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hybridge.calendar import wire
from hybridge.cloud import audit
from hybridge.cloud.calendar_errors import CalendarInputError, CalendarNotFound
from hybridge.cloud.calendar_models import (
    calendar_meeting,
    calendar_meeting_room,
    calendar_org,
    calendar_user,
)
from hybridge.core.meetings import JoinTemplate, MeetingError
from hybridge.storage import StorageError

T = TypeVar("T")

#: One paste adds at most this many users (a connector host serves 15,000 mailboxes).
MAX_PASTE_USERS = 20_000
MAX_DISPLAY_NAME = 256

# RFC 5321 §4.5.3.1: local part <= 64 octets, whole path <= 256; no spaces or controls,
# exactly one "@". Deliberately looser than RFC 5322 (quoted local parts are not used for
# Exchange primary SMTP addresses) but strict enough that a pasted line of junk fails.
_MAILBOX = re.compile(r"^[^\s@<>(),;:\"\[\]\\]{1,64}@[^\s@<>(),;:\"\[\]\\]{1,189}$")
_NAMED = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>]+)>\s*$")


@dataclass(frozen=True)
class EnabledUser:
    """One enabled user as the portal and the API show them."""

    mailbox: str
    display_name: str
    status: str
    reason: str
    status_at: dt.datetime | None
    ooo_state: str | None
    ooo_active: bool | None
    ooo_until: dt.datetime | None
    meetings: int


@dataclass(frozen=True)
class UsersChange:
    """The outcome of an add/remove: the new version and what changed."""

    version: int
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def retry_on_conflict(work: Callable[[], T]) -> T:
    """Run ``work`` (one transaction); once more if it lost a race to insert the same row.

    Two requests may insert the same meeting, user or organisation row at once (a
    connector's retry, two admins); the loser's transaction fails on the primary key and
    rolls back whole. Every operation here is idempotent, so running it again sees the
    winner's row and does the right thing.
    """
    try:
        return work()
    except StorageError as exc:
        if not isinstance(exc.__cause__, IntegrityError):
            raise
        return work()


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def check_mailbox(value: str, field: str = "mailbox") -> str:
    """``value`` as a lower-case mailbox address; CalendarInputError names ``field``."""
    address = value.strip().lower()
    if not _MAILBOX.match(address):
        raise CalendarInputError(
            f"{value[:300]!r} is not a mailbox address like 'alice@contoso.com'", field=field
        )
    return address


def parse_users(text: str) -> list[tuple[str, str]]:
    """Pasted lines as ``(mailbox, display name)``: ``addr``, ``addr, Name`` or
    ``Name <addr>``; blank lines and ``#`` comments are skipped.

    Raises CalendarInputError naming the line of the first bad entry.
    """
    out: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        named = _NAMED.match(line)
        if named:
            address, name = named.group("addr"), named.group("name").strip("\"' ")
        else:
            address, _, name = (part.strip() for part in line.replace(";", ",").partition(","))
        try:
            mailbox = check_mailbox(address, f"line {number}")
        except CalendarInputError as exc:
            raise CalendarInputError(f"line {number}: {exc}", field=f"line {number}") from exc
        out.append((mailbox, check_display_name(name, f"line {number}")))
        if len(out) > MAX_PASTE_USERS:
            raise CalendarInputError(
                f"more than {MAX_PASTE_USERS} users in one paste; split it", field="users"
            )
    return out


def check_display_name(value: str, field: str = "display_name") -> str:
    """A display name: at most 256 characters, no control characters."""
    name = " ".join(value.split())
    if len(name) > MAX_DISPLAY_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise CalendarInputError(
            f"display name {value[:80]!r} must be at most {MAX_DISPLAY_NAME} printable characters",
            field=field,
        )
    return name


# ---------------------------------------------------------------- organisation row


def _org_row(session: Session, org_id: str) -> Any:
    row = session.execute(sa.select(calendar_org).where(calendar_org.c.org_id == org_id)).first()
    if row is None:
        session.execute(
            sa.insert(calendar_org).values(
                org_id=org_id, users_version=0, template_header="", template_footer=""
            )
        )
        row = session.execute(sa.select(calendar_org).where(calendar_org.c.org_id == org_id)).one()
    return row


def users_version(session: Session, org_id: str) -> int:
    """The version of the organisation's enabled-users list (0 before any change)."""
    return int(_org_row(session, org_id).users_version)


def _bump(session: Session, org_id: str) -> int:
    _org_row(session, org_id)
    # An UPDATE ... SET v = v + 1 is atomic in every database: two admins changing the list
    # at once get two versions, never the same one.
    session.execute(
        sa.update(calendar_org)
        .where(calendar_org.c.org_id == org_id)
        .values(users_version=calendar_org.c.users_version + 1)
    )
    return users_version(session, org_id)


def template(session: Session, org_id: str) -> JoinTemplate:
    """The organisation's join template (empty header and footer until an admin sets it)."""
    row = _org_row(session, org_id)
    return JoinTemplate(header=row.template_header, footer=row.template_footer)


def check_template(header: str, footer: str) -> JoinTemplate:
    """A JoinTemplate, or CalendarInputError naming ``header`` or ``footer``."""
    for name, text in (("header", header), ("footer", footer)):
        try:
            JoinTemplate(**{name: text})
        except MeetingError as exc:
            raise CalendarInputError(str(exc), field=name) from exc
    return JoinTemplate(header=header, footer=footer)


def set_template(
    session: Session, org_id: str, value: JoinTemplate, actor: str, now: dt.datetime
) -> None:
    """Store the organisation's template (used from each meeting's next update on)."""
    _org_row(session, org_id)
    session.execute(
        sa.update(calendar_org)
        .where(calendar_org.c.org_id == org_id)
        .values(
            template_header=value.header,
            template_footer=value.footer,
            template_updated_at=now,
            template_updated_by=actor,
        )
    )
    audit.record(
        session,
        now,
        actor,
        "calendar.template_changed",
        {"header_chars": len(value.header), "footer_chars": len(value.footer)},
        org_id,
    )


# ---------------------------------------------------------------- users


def list_users(session: Session, org_id: str, mailbox: str | None = None) -> list[EnabledUser]:
    """The organisation's enabled users (or just ``mailbox``), by mailbox, with their
    status and meetings count."""
    counting = (
        sa.select(calendar_meeting.c.mailbox, sa.func.count())
        .where(calendar_meeting.c.org_id == org_id)
        .group_by(calendar_meeting.c.mailbox)
    )
    listing = sa.select(calendar_user).where(calendar_user.c.org_id == org_id)
    if mailbox is not None:
        counting = counting.where(calendar_meeting.c.mailbox == mailbox)
        listing = listing.where(calendar_user.c.mailbox == mailbox)
    counts: dict[str, int] = dict(session.execute(counting).all())
    rows = session.execute(listing.order_by(calendar_user.c.mailbox)).all()
    return [
        EnabledUser(
            mailbox=r.mailbox,
            display_name=r.display_name,
            status=r.status,
            reason=r.reason,
            status_at=as_utc(r.status_at),
            ooo_state=r.ooo_state,
            ooo_active=r.ooo_active,
            ooo_until=as_utc(r.ooo_until),
            meetings=int(counts.get(r.mailbox, 0)),
        )
        for r in rows
    ]


def is_enabled(session: Session, org_id: str, mailbox: str) -> bool:
    """True when ``mailbox`` is an enabled user of ``org_id``."""
    return (
        session.execute(
            sa.select(calendar_user.c.mailbox).where(
                calendar_user.c.org_id == org_id, calendar_user.c.mailbox == mailbox
            )
        ).first()
        is not None
    )


def require_enabled(session: Session, org_id: str, mailbox: str) -> None:
    """Raise CalendarNotFound unless ``mailbox`` is an enabled user of ``org_id``.

    The same answer whether the mailbox is another organisation's or nobody's: a connector
    must not learn which addresses other tenants enabled.
    """
    if not is_enabled(session, org_id, mailbox):
        raise CalendarNotFound(f"mailbox {mailbox[:300]!r} is not an enabled user here")


def add_users(
    session: Session,
    org_id: str,
    users: list[tuple[str, str]],
    actor: str,
    now: dt.datetime,
) -> UsersChange:
    """Enable ``users`` (mailbox, display name); an existing one gets the new name.

    The version grows once when anything changed.
    """
    existing = {
        r.mailbox: r.display_name
        for r in session.execute(
            sa.select(calendar_user.c.mailbox, calendar_user.c.display_name).where(
                calendar_user.c.org_id == org_id
            )
        )
    }
    changed: list[str] = []
    unchanged: list[str] = []
    seen: set[str] = set()
    for mailbox, name in users:
        if mailbox in seen:
            continue
        seen.add(mailbox)
        if mailbox not in existing:
            session.execute(
                sa.insert(calendar_user).values(
                    org_id=org_id,
                    mailbox=mailbox,
                    display_name=name,
                    added_at=now,
                    added_by=actor,
                    status="pending",
                    reason="",
                )
            )
            changed.append(mailbox)
        elif name and existing[mailbox] != name:
            session.execute(
                sa.update(calendar_user)
                .where(calendar_user.c.org_id == org_id, calendar_user.c.mailbox == mailbox)
                .values(display_name=name)
            )
            changed.append(mailbox)
        else:
            unchanged.append(mailbox)
    version = _bump(session, org_id) if changed else users_version(session, org_id)
    if changed:
        audit.record(
            session,
            now,
            actor,
            "calendar.users_enabled",
            {"count": len(changed), "first": changed[:5], "version": version},
            org_id,
        )
    return UsersChange(version, tuple(changed), tuple(unchanged))


def remove_users(
    session: Session, org_id: str, mailboxes: list[str], actor: str, now: dt.datetime
) -> UsersChange:
    """Disable ``mailboxes`` and forget their meetings; the version grows when any was on."""
    removed = [m for m in dict.fromkeys(mailboxes) if is_enabled(session, org_id, m)]
    absent = [m for m in dict.fromkeys(mailboxes) if m not in removed]
    for mailbox in removed:
        session.execute(
            sa.delete(calendar_user).where(
                calendar_user.c.org_id == org_id, calendar_user.c.mailbox == mailbox
            )
        )
        forget_mailbox(session, org_id, mailbox)
    version = _bump(session, org_id) if removed else users_version(session, org_id)
    if removed:
        audit.record(
            session,
            now,
            actor,
            "calendar.users_disabled",
            {"count": len(removed), "first": removed[:5], "version": version},
            org_id,
        )
    return UsersChange(version, tuple(removed), tuple(absent))


def set_status(
    session: Session, org_id: str, mailbox: str, status: wire.StatusReport, now: dt.datetime
) -> None:
    """Record what the connector reports about ``mailbox`` (CalendarNotFound if not ours)."""
    require_enabled(session, org_id, mailbox)
    ooo = status.out_of_office
    session.execute(
        sa.update(calendar_user)
        .where(calendar_user.c.org_id == org_id, calendar_user.c.mailbox == mailbox)
        .values(
            status=status.status,
            reason=status.reason,
            status_at=now,
            ooo_state=None if ooo is None else ooo.state,
            ooo_active=None if ooo is None else ooo.active,
            ooo_until=None if ooo is None or ooo.end is None else ooo.end.astimezone(dt.UTC),
        )
    )


def delete_room_rows(session: Session, org_id: str, mailbox: str, ids: list[str] | None) -> None:
    statement = sa.delete(calendar_meeting_room).where(
        calendar_meeting_room.c.org_id == org_id, calendar_meeting_room.c.mailbox == mailbox
    )
    if ids is not None:
        statement = statement.where(calendar_meeting_room.c.meeting_id.in_(ids))
    session.execute(statement)


def forget_mailbox(session: Session, org_id: str, mailbox: str) -> None:
    """Forget every meeting of ``mailbox`` (the user was removed)."""
    session.execute(
        sa.delete(calendar_meeting).where(
            calendar_meeting.c.org_id == org_id, calendar_meeting.c.mailbox == mailbox
        )
    )
    delete_room_rows(session, org_id, mailbox, None)
