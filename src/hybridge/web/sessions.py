"""Server-side sessions in the role's database.

The cookie holds 256 random bits (``secrets.token_urlsafe(32)``); the table holds only its
SHA-256, so a database copy or backup cannot be replayed as a live session (the same reason
warehouse and Django store session keys server-side). Every session, anonymous or not, has
a CSRF token (the synchronizer token of OWASP's CSRF cheat sheet); login replaces the
session with a new one (OWASP session fixation: new identifier on privilege change).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.web.clock import aware
from hybridge.web.schema import web_admin, web_session


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class WebSession:
    """One loaded session. ``token`` is the cookie value: never log or render it."""

    token: str = field(repr=False)
    csrf_token: str = field(repr=False)
    admin_id: str | None
    admin_login: str | None
    expires_at: dt.datetime
    data: dict[str, Any]

    @property
    def authenticated(self) -> bool:
        return self.admin_id is not None


def create_session(
    session: Session,
    now: dt.datetime,
    lifetime: dt.timedelta,
    admin_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> WebSession:
    """Store a new session and return it with its fresh cookie token and CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    expires_at = now + lifetime
    session.execute(
        sa.insert(web_session).values(
            id_hash=_digest(token),
            admin_id=admin_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
            data=data or {},
        )
    )
    login = None
    if admin_id is not None:
        login = session.execute(
            sa.select(web_admin.c.login).where(web_admin.c.id == admin_id)
        ).scalar_one()
    return WebSession(token, csrf_token, admin_id, login, expires_at, dict(data or {}))


def load_session(session: Session, token: str, now: dt.datetime) -> WebSession | None:
    """The live session for cookie value ``token``, or ``None`` (unknown, expired, disabled)."""
    if not token or len(token) > 128:
        return None
    row = session.execute(
        sa.select(web_session, web_admin.c.login, web_admin.c.disabled)
        .outerjoin(web_admin, web_admin.c.id == web_session.c.admin_id)
        .where(web_session.c.id_hash == _digest(token))
    ).first()
    if row is None:
        return None
    if aware(row.expires_at) <= now or (row.admin_id is not None and row.disabled):
        session.execute(sa.delete(web_session).where(web_session.c.id_hash == row.id_hash))
        return None
    return WebSession(
        token, row.csrf_token, row.admin_id, row.login, aware(row.expires_at), dict(row.data)
    )


def update_data(session: Session, web: WebSession, data: dict[str, Any]) -> WebSession:
    """Replace the session's data (e.g. the OAuth request waiting for approval)."""
    session.execute(
        sa.update(web_session).where(web_session.c.id_hash == _digest(web.token)).values(data=data)
    )
    return WebSession(
        web.token, web.csrf_token, web.admin_id, web.admin_login, web.expires_at, data
    )


def destroy_session(session: Session, token: str) -> None:
    """Delete the session of cookie value ``token`` (logout, or replaced at login)."""
    session.execute(sa.delete(web_session).where(web_session.c.id_hash == _digest(token)))


def destroy_admin_sessions(session: Session, admin_id: str) -> None:
    """Delete every session of ``admin_id`` (password change, account disabled)."""
    session.execute(sa.delete(web_session).where(web_session.c.admin_id == admin_id))


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete expired sessions; returns how many."""
    result = session.execute(sa.delete(web_session).where(web_session.c.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
