"""The emulated organisation: directory accounts, impersonation rights and throttling.

Mirrors what an Exchange admin configures:

- accounts (``New-Mailbox`` / AD users): primary SMTP address, sAMAccountName, password, and
  whether the password has expired or the account has a mailbox at all;
- role assignments of ``ApplicationImpersonation``
  (``New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc
  [-CustomRecipientWriteScope scope]``): who may impersonate, and a management scope limiting
  whom (``None`` = the whole organisation, else the listed mailboxes — a stand-in for the
  scope's ``RecipientRestrictionFilter``);
- throttling (an EWS throttling policy stand-in): after N requests against a mailbox, answer
  ``ErrorServerBusy`` with ``BackOffMilliseconds``.

``load_config`` reads the same from a users.json file for ``python -m hybridge.testing.ews``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridge.testing.ews.errors import EmulatorConfigError


def _check_smtp(value: str) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or " " in value:
        raise EmulatorConfigError(f"smtp {value!r} is not an address like alice@contoso.test")
    return value.lower()


@dataclass(frozen=True)
class DirectoryAccount:
    """One AD account; ``has_mailbox`` is False for a service account without a mailbox."""

    smtp: str
    username: str
    password: str = field(repr=False)
    display_name: str = ""
    password_expired: bool = False
    has_mailbox: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "smtp", _check_smtp(self.smtp))
        if not self.username or "\\" in self.username or "@" in self.username:
            raise EmulatorConfigError(
                f"username {self.username!r} must be a bare sAMAccountName like 'svc-hybridge'"
            )


@dataclass(frozen=True)
class ImpersonationAssignment:
    """``ApplicationImpersonation`` granted to ``username``; ``scope`` None = organisation."""

    name: str
    username: str
    scope: frozenset[str] | None = None


@dataclass(frozen=True)
class ThrottlePolicy:
    """Answer "busy" once a mailbox has served ``after_requests`` requests.

    ``style`` "fault" is EWS throttling (SOAP fault ``ErrorServerBusy`` with
    ``BackOffMilliseconds``, HTTP 500); "http503" is what IIS or a load balancer in front of
    a saturated CAS sends (HTTP 503 with ``Retry-After`` in seconds).
    """

    after_requests: int
    back_off_ms: int = 5000
    #: How many busy answers to give before serving again (0 = busy forever).
    busy_responses: int = 1
    style: str = "fault"

    def __post_init__(self) -> None:
        if self.after_requests < 0 or self.back_off_ms < 0 or self.busy_responses < 0:
            raise EmulatorConfigError(f"throttle policy {self!r} has a negative number")
        if self.style not in ("fault", "http503"):
            raise EmulatorConfigError(f"throttle style {self.style!r} must be 'fault' or 'http503'")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that is not mailbox content."""

    netbios_domain: str = "CONTOSO"
    dns_domain: str = "contoso.test"
    accounts: tuple[DirectoryAccount, ...] = ()
    impersonation: tuple[ImpersonationAssignment, ...] = ()
    #: Per-mailbox throttling, keyed by lower-case SMTP address; "*" applies to every mailbox.
    throttling: tuple[tuple[str, ThrottlePolicy], ...] = ()
    #: Seconds per "minute" of GetStreamingEvents ConnectionTimeout (60 in production).
    streaming_minute_seconds: float = 60.0
    #: Seconds between ConnectionStatus OK heartbeats on an idle streaming connection.
    streaming_heartbeat_seconds: float = 30.0

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for acct in self.accounts:
            for key in (acct.smtp, acct.username.lower()):
                if key in seen:
                    raise EmulatorConfigError(f"account {key!r} is defined twice")
                seen.add(key)


def _account(raw: dict[str, Any]) -> DirectoryAccount:
    try:
        return DirectoryAccount(
            smtp=raw["smtp"],
            username=raw["username"],
            password=raw["password"],
            display_name=raw.get("display_name", ""),
            password_expired=bool(raw.get("password_expired", False)),
            has_mailbox=bool(raw.get("mailbox", True)),
        )
    except KeyError as exc:
        raise EmulatorConfigError(
            f"account {raw.get('smtp')!r} lacks {exc.args[0]!r}; need smtp, username, password"
        ) from exc


def config_from_dict(raw: dict[str, Any]) -> EmulatorConfig:
    """Build an :class:`EmulatorConfig` from users.json's structure; raises EmulatorConfigError."""
    if not isinstance(raw, dict):
        raise EmulatorConfigError(f"configuration must be a JSON object, not {type(raw).__name__}")
    assignments = []
    for item in raw.get("impersonation", []):
        scope = item.get("scope")
        assignments.append(
            ImpersonationAssignment(
                name=item.get("name", "ApplicationImpersonation"),
                username=item["user"],
                scope=None if scope is None else frozenset(_check_smtp(s) for s in scope),
            )
        )
    throttling = tuple(
        (key if key == "*" else _check_smtp(key), ThrottlePolicy(**value))
        for key, value in raw.get("throttling", {}).items()
    )
    return EmulatorConfig(
        netbios_domain=raw.get("netbios_domain", "CONTOSO"),
        dns_domain=raw.get("dns_domain", "contoso.test"),
        accounts=tuple(_account(a) for a in raw.get("accounts", [])),
        impersonation=tuple(assignments),
        throttling=throttling,
        streaming_minute_seconds=float(raw.get("streaming_minute_seconds", 60.0)),
        streaming_heartbeat_seconds=float(raw.get("streaming_heartbeat_seconds", 30.0)),
    )


def load_config(path: Path) -> EmulatorConfig:
    """Read users.json; raises EmulatorConfigError naming the file when it is unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmulatorConfigError(f"cannot read emulator config {str(path)!r}: {exc}") from exc
    try:
        return config_from_dict(raw)
    except (KeyError, TypeError) as exc:
        raise EmulatorConfigError(f"emulator config {str(path)!r} is malformed: {exc}") from exc
