"""Admin accounts: create, authenticate (with throttling), change password."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.web import throttle
from hybridge.web.errors import LoginFailed, LoginThrottled, WebError
from hybridge.web.passwords import (
    DUMMY_HASH,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from hybridge.web.schema import web_admin
from hybridge.web.throttle import ThrottlePolicy


@dataclass(frozen=True)
class AdminAccount:
    """An admin as the pages see it: no hash in it."""

    id: str
    login: str
    created_at: dt.datetime
    disabled: bool


def normalize_login(login: str) -> str:
    """Logins compare case-insensitively and without surrounding blanks."""
    value = login.strip().lower()
    if not value or len(value) > 320 or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise WebError(f"login {login!r} must be 1-320 printable characters without spaces")
    return value


def create_admin(session: Session, login: str, password: str, now: dt.datetime) -> AdminAccount:
    """Store a new admin with an argon2id hash of ``password``.

    Raises:
        WeakPassword: ``password`` is outside the policy.
        WebError: the login is invalid or already taken.
    """
    value = normalize_login(login)
    check_password_policy(password)
    exists = session.execute(sa.select(web_admin.c.id).where(web_admin.c.login == value)).first()
    if exists is not None:
        raise WebError(f"an admin with login {value!r} already exists")
    admin_id = str(uuid.uuid4())
    session.execute(
        sa.insert(web_admin).values(
            id=admin_id,
            login=value,
            password_hash=hash_password(password),
            created_at=now,
            disabled=False,
        )
    )
    return AdminAccount(admin_id, value, now, False)


def find_admin(session: Session, login: str) -> AdminAccount | None:
    """The admin with ``login``, or ``None``."""
    try:
        value = normalize_login(login)
    except WebError:
        return None
    row = session.execute(sa.select(web_admin).where(web_admin.c.login == value)).first()
    if row is None:
        return None
    return AdminAccount(row.id, row.login, row.created_at, row.disabled)


def authenticate(
    session: Session,
    login: str,
    password: str,
    client_address: str,
    policy: ThrottlePolicy,
    now: dt.datetime,
) -> AdminAccount:
    """The admin whose ``login`` and ``password`` match, counting failures for throttling.

    The caller must commit ``session`` even when this raises ``LoginFailed``: the failure
    counters are the point (``Database.transaction`` rolls back on an exception escaping it,
    so ``WebAuth.login`` catches ``LoginFailed`` inside the transaction and re-raises after).

    Raises:
        LoginThrottled: the account or the client address is locked (password not checked).
        LoginFailed: unknown login, wrong password or disabled account (one message for all).
    """
    try:
        value = normalize_login(login)
    except WebError:
        value = login[:320]
    keys = [throttle.account_key(value), throttle.address_key(client_address)]
    wait = throttle.locked_for(session, keys, now)
    if wait:
        raise LoginThrottled(
            f"too many failed logins; try again in {wait} seconds", retry_after=wait
        )
    row = session.execute(sa.select(web_admin).where(web_admin.c.login == value)).first()
    # One argon2 verification whether or not the login exists: no timing oracle.
    ok = verify_password(row.password_hash if row else DUMMY_HASH, password)
    if row is None or not ok or row.disabled:
        throttle.record_failure(session, keys[0], policy.account_free_failures, policy, now)
        throttle.record_failure(session, keys[1], policy.address_free_failures, policy, now)
        raise LoginFailed("wrong login or password")
    throttle.clear(session, keys[0])
    if needs_rehash(row.password_hash):
        session.execute(
            sa.update(web_admin)
            .where(web_admin.c.id == row.id)
            .values(password_hash=hash_password(password))
        )
    return AdminAccount(row.id, row.login, row.created_at, row.disabled)


def set_password(session: Session, admin_id: str, password: str) -> None:
    """Replace an admin's password (policy checked, argon2id)."""
    check_password_policy(password)
    session.execute(
        sa.update(web_admin)
        .where(web_admin.c.id == admin_id)
        .values(password_hash=hash_password(password))
    )
