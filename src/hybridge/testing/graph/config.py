"""What a Graph emulator's tenant holds: app registrations, mailboxes and RBAC assignments.

The access model is Exchange Online's *RBAC for Applications*: an app registration (a
service principal) is given an application role such as ``Application Calendars.ReadWrite``
through a management role assignment, optionally limited by a management scope (here: the
set of mailboxes the scope's filter selects). A mailbox outside every assignment's scope
answers ``403 ErrorAccessDenied``. Tenant-wide Entra application permissions (admin consent)
are modelled as ``entra_roles`` and, as in Exchange Online, are *added* to the RBAC grants:
a least-privilege tenant leaves them empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: The Exchange Online application roles the emulator knows (RBAC for Applications names).
CALENDARS_READ = "Application Calendars.Read"
CALENDARS_READWRITE = "Application Calendars.ReadWrite"
MAILBOX_SETTINGS_READ = "Application MailboxSettings.Read"
ROLES = frozenset({CALENDARS_READ, CALENDARS_READWRITE, MAILBOX_SETTINGS_READ})

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.\-]{1,253}$")


class GraphConfigError(ValueError):
    """An emulator configuration value that cannot be used (names the field)."""


@dataclass(frozen=True)
class AppRegistration:
    """An Entra app registration: its client id and its credentials.

    ``secrets`` are client-secret values; ``certificates_pem`` are the public certificates
    whose private keys may sign client assertions (RFC 7523).
    """

    client_id: str
    secrets: tuple[str, ...] = ()
    certificates_pem: tuple[bytes, ...] = ()
    entra_roles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not _GUID.match(self.client_id):
            raise GraphConfigError(f"client_id {self.client_id!r} must be a lower-case GUID")
        if not self.secrets and not self.certificates_pem:
            raise GraphConfigError(f"app {self.client_id!r} needs a secret or a certificate")
        bad = sorted(self.entra_roles - ROLES)
        if bad:
            raise GraphConfigError(f"entra_roles {bad!r} must be among {sorted(ROLES)}")

    def __repr__(self) -> str:
        # Secrets stay out of reprs (pytest prints fixture values on failure).
        return f"AppRegistration(client_id={self.client_id!r}, secrets=<{len(self.secrets)}>)"


@dataclass(frozen=True)
class RoleAssignment:
    """``New-ManagementRoleAssignment -App <client_id> -Role <role> -CustomResourceScope``.

    ``scope`` None means the whole organisation; otherwise the lower-case addresses the
    management scope's recipient filter selects.
    """

    client_id: str
    role: str
    scope: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise GraphConfigError(f"role {self.role!r} must be one of {sorted(ROLES)}")
        if self.scope is not None:
            object.__setattr__(self, "scope", frozenset(a.lower() for a in self.scope))


@dataclass(frozen=True)
class Mailbox:
    """A user with an Exchange Online mailbox."""

    address: str
    display_name: str = ""
    object_id: str = ""

    def __post_init__(self) -> None:
        if not _ADDRESS.match(self.address):
            raise GraphConfigError(f"mailbox {self.address!r} is not an address like a@b.c")
        object.__setattr__(self, "address", self.address.lower())


@dataclass(frozen=True)
class ThrottlePolicy:
    """Answer requests for one mailbox with ``status`` and ``Retry-After: retry_after``.

    ``responses`` None throttles until the policy is cleared; a number throttles that many
    requests and then lets them through.
    """

    retry_after: int = 30
    status: Literal[429, 503] = 429
    responses: int | None = None


@dataclass(frozen=True)
class GraphTenantConfig:
    """The tenant an emulator serves."""

    tenant_id: str
    apps: tuple[AppRegistration, ...]
    mailboxes: tuple[Mailbox, ...]
    assignments: tuple[RoleAssignment, ...] = ()
    #: Access-token lifetime; Entra issues 60-90 minutes, tests shorten it.
    token_lifetime_seconds: int = 3600
    #: ``Prefer: odata.maxpagesize`` when the client sends none.
    default_page_size: int = 10
    max_page_size: int = 1000

    def __post_init__(self) -> None:
        if not _GUID.match(self.tenant_id):
            raise GraphConfigError(f"tenant_id {self.tenant_id!r} must be a lower-case GUID")
        if self.token_lifetime_seconds < 1:
            raise GraphConfigError(
                f"token_lifetime_seconds {self.token_lifetime_seconds!r} must be >= 1"
            )
        known = {a.client_id for a in self.apps}
        for assignment in self.assignments:
            if assignment.client_id not in known:
                raise GraphConfigError(
                    f"assignment for unknown app {assignment.client_id!r}; known: {sorted(known)}"
                )


def tenant_from_json(data: object) -> GraphTenantConfig:
    """A tenant from JSON (the ``--config`` file of ``python -m hybridge.testing.graph``).

    ``{"tenant_id", "apps": [{"client_id", "secrets": [...]}], "mailboxes": ["a@b.c"],
    "assignments": [{"client_id", "role", "scope": ["a@b.c"] | null}],
    "token_lifetime_seconds"}``. Raises GraphConfigError naming what is wrong.
    """
    if not isinstance(data, dict):
        raise GraphConfigError("the configuration must be a JSON object")
    try:
        apps = tuple(
            AppRegistration(
                str(a["client_id"]),
                secrets=tuple(str(s) for s in a.get("secrets", ())),
                certificates_pem=tuple(str(c).encode() for c in a.get("certificates_pem", ())),
            )
            for a in data["apps"]
        )
        assignments = tuple(
            RoleAssignment(
                str(r["client_id"]),
                str(r["role"]),
                None if r.get("scope") is None else frozenset(str(m) for m in r["scope"]),
            )
            for r in data.get("assignments", ())
        )
        return GraphTenantConfig(
            tenant_id=str(data["tenant_id"]),
            apps=apps,
            mailboxes=tuple(Mailbox(str(m)) for m in data["mailboxes"]),
            assignments=assignments,
            token_lifetime_seconds=int(data.get("token_lifetime_seconds", 3600)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise GraphConfigError(f"the configuration is missing or mistypes {exc}") from exc
