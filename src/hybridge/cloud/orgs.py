"""Organisations and their admins (the accounts themselves live in ``hybridge.web``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.cloud import audit
from hybridge.cloud.errors import OrganisationError
from hybridge.cloud.models import org_admin, organisation
from hybridge.web.accounts import AdminAccount, create_admin


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str


@dataclass(frozen=True)
class PortalAdmin:
    """A logged-in admin as the portal sees them: account, organisation, operator flag."""

    admin_id: str
    login: str
    organisation: Organisation
    is_operator: bool


def _check_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > 200:
        raise OrganisationError(f"organisation name {name!r} must have 1-200 characters")
    return value


def get_or_create_organisation(session: Session, name: str, now: dt.datetime) -> Organisation:
    """The organisation called ``name``, created if it does not exist yet."""
    value = _check_name(name)
    row = session.execute(sa.select(organisation).where(organisation.c.name == value)).first()
    if row is not None:
        return Organisation(row.id, row.name)
    org = Organisation(str(uuid.uuid4()), value)
    session.execute(sa.insert(organisation).values(id=org.id, name=org.name, created_at=now))
    audit.record(session, now, "cli", "organisation.created", {"name": value}, org.id)
    return org


def create_org_admin(
    session: Session,
    org_name: str,
    email: str,
    password: str,
    now: dt.datetime,
    *,
    operator: bool = False,
) -> tuple[Organisation, AdminAccount]:
    """Create an admin of ``org_name`` (the organisation too, if new).

    Raises:
        OrganisationError: bad organisation name.
        WebError / WeakPassword: bad login, taken login, or a password outside the policy.
    """
    if "@" not in email:
        raise OrganisationError(f"admin e-mail {email!r} must contain '@'")
    org = get_or_create_organisation(session, org_name, now)
    account = create_admin(session, email, password, now)
    session.execute(
        sa.insert(org_admin).values(admin_id=account.id, org_id=org.id, is_operator=operator)
    )
    audit.record(
        session,
        now,
        "cli",
        "admin.created",
        {"login": account.login, "operator": operator},
        org.id,
    )
    return org, account


def portal_admin(session: Session, admin_id: str, login: str) -> PortalAdmin:
    """The organisation and role of ``admin_id``.

    Raises:
        OrganisationError: the account belongs to no organisation.
    """
    row = session.execute(
        sa.select(org_admin.c.is_operator, organisation.c.id, organisation.c.name)
        .join(organisation, organisation.c.id == org_admin.c.org_id)
        .where(org_admin.c.admin_id == admin_id)
    ).first()
    if row is None:
        raise OrganisationError(f"admin {login!r} belongs to no organisation")
    return PortalAdmin(admin_id, login, Organisation(row.id, row.name), bool(row.is_operator))
