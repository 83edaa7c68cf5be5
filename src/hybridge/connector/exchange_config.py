"""An Exchange configuration of the calendar connector: the value, its table, its view.

``ExchangeConfig`` holds what the connector admin sets (display name; EWS URL or
Autodiscover by e-mail address with an allow-list of redirect hosts; the impersonation
account; NTLM or Basic; whether TLS certificates are verified; the test mailbox). It holds
no password: the password is a vault secret, purpose :data:`PASSWORD_PURPOSE`, record = the
configuration id. ``public_view`` is the one shape pages, the API, the CLI and the export
show: for the password it gives "set on <date> by <who>" and the version, never a value.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.connector.exchange_common import (
    bookkeeping_of,
    bookkeeping_view,
    check_display_name,
    check_mapping,
    secret_view,
)
from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.vault import SecretMetadata
from hybridge.vault.models import UtcDateTime

if TYPE_CHECKING:
    from hybridge.calendar.ews import EwsSettings

#: EwsSettings checks them again; kept here so that importing this module (and so starting
#: the connector app or a CLI command) does not import exchangelib (~1 s).
AUTH_METHODS = ("NTLM", "Basic")
PASSWORD_PURPOSE = "exchange.impersonation"  # noqa: S105 - a vault purpose name
_MAX_REDIRECT_HOSTS = 20
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)

metadata = sa.MetaData()

configs_table = sa.Table(
    "exchange_configs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("display_name", sa.String(100), nullable=False, unique=True),
    sa.Column("ews_url", sa.String(2000), nullable=True),
    sa.Column("autodiscover_email", sa.String(320), nullable=True),
    sa.Column("redirect_hosts", sa.JSON, nullable=False),
    sa.Column("username", sa.String(320), nullable=False),
    sa.Column("auth", sa.String(8), nullable=False),
    sa.Column("verify_tls", sa.Boolean, nullable=False),
    sa.Column("test_mailbox", sa.String(320), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.Column("last_test_code", sa.String(32), nullable=True),
    sa.Column("last_test_at", UtcDateTime, nullable=True),
)


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


@dataclass(frozen=True)
class ExchangeConfig:
    """What the connector admin configures for one Exchange organisation (no password).

    Exactly one of ``ews_url`` and ``autodiscover_email``. ``username`` is ``DOMAIN\\user``
    or a UPN. ``verify_tls`` False means the certificate is not checked (TLS stays on).

    Raises:
        ExchangeConfigInvalid: a field is malformed (the message quotes it).
    """

    display_name: str
    username: str
    test_mailbox: str
    ews_url: str | None = None
    autodiscover_email: str | None = None
    redirect_hosts: tuple[str, ...] = ()
    auth: str = "NTLM"
    verify_tls: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "display_name", check_display_name(self.display_name))
        object.__setattr__(self, "ews_url", _optional(self.ews_url))
        object.__setattr__(self, "autodiscover_email", _optional(self.autodiscover_email))
        object.__setattr__(self, "username", self.username.strip())
        object.__setattr__(self, "test_mailbox", self.test_mailbox.strip())
        hosts = []
        for host in self.redirect_hosts:
            norm = host.strip().lower().rstrip(".")
            if not norm:
                continue
            if not _HOSTNAME.match(norm):
                raise ExchangeConfigInvalid(
                    f"Autodiscover redirect host {host!r} is not a DNS name like "
                    "'autodiscover.example.com'"
                )
            if norm not in hosts:
                hosts.append(norm)
        if len(hosts) > _MAX_REDIRECT_HOSTS:
            raise ExchangeConfigInvalid(
                f"{len(hosts)} Autodiscover redirect hosts; at most {_MAX_REDIRECT_HOSTS}"
            )
        object.__setattr__(self, "redirect_hosts", tuple(hosts))
        if self.auth not in AUTH_METHODS:
            raise ExchangeConfigInvalid(
                f"authentication {self.auth!r} is not accepted; expected one of {AUTH_METHODS}"
            )
        if not isinstance(self.verify_tls, bool):
            raise ExchangeConfigInvalid(f"verify_tls {self.verify_tls!r} must be true or false")
        self.ews_settings()  # the EWS rules (https only, DOMAIN\user or UPN, addresses)

    def ews_settings(self, timeout_seconds: float = 20.0) -> EwsSettings:
        """The settings the EWS connection test takes. Raises ``ExchangeConfigInvalid``."""
        from hybridge.calendar.ews import EwsSettings

        try:
            return EwsSettings(
                username=self.username,
                test_mailbox=self.test_mailbox,
                ews_url=self.ews_url,
                autodiscover_email=self.autodiscover_email,
                auth=self.auth,
                autodiscover_redirect_hosts=frozenset(self.redirect_hosts),
                timeout_seconds=timeout_seconds,
            )
        except CalendarSettingsError as exc:
            raise ExchangeConfigInvalid(str(exc)) from exc

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ExchangeConfig:
        """Build from the API's / CLI's JSON shape. Raises ``ExchangeConfigInvalid``."""
        known = {
            "display_name",
            "username",
            "test_mailbox",
            "ews_url",
            "autodiscover_email",
            "redirect_hosts",
            "auth",
            "verify_tls",
        }
        check_mapping(data, known, ("display_name", "username", "test_mailbox"))
        hosts = data.get("redirect_hosts", ())
        if isinstance(hosts, str):
            hosts = hosts.replace(",", " ").split()
        try:
            return cls(
                display_name=data["display_name"],
                username=data["username"],
                test_mailbox=data["test_mailbox"],
                ews_url=data.get("ews_url"),
                autodiscover_email=data.get("autodiscover_email"),
                redirect_hosts=tuple(str(h) for h in hosts),
                auth=str(data.get("auth", "NTLM")),
                verify_tls=data.get("verify_tls", True),
            )
        except (AttributeError, TypeError) as exc:
            raise ExchangeConfigInvalid(f"malformed Exchange configuration: {exc}") from exc


@dataclass(frozen=True)
class ExchangeRecord:
    """A stored configuration, with who changed it and the password's metadata (no value)."""

    id: str
    config: ExchangeConfig
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    updated_by: str
    last_test_code: str | None
    last_test_at: dt.datetime | None
    password: SecretMetadata | None

    def public_view(self) -> dict[str, Any]:
        """What pages, the API, the CLI and the export show; never the password."""
        c = self.config
        return {
            "id": self.id,
            "display_name": c.display_name,
            "ews_url": c.ews_url,
            "autodiscover_email": c.autodiscover_email,
            "redirect_hosts": list(c.redirect_hosts),
            "username": c.username,
            "auth": c.auth,
            "tls": {"enabled": True, "verify": c.verify_tls, "trust": "platform"},
            "test_mailbox": c.test_mailbox,
            "password": secret_view(self.password),
        } | bookkeeping_view(self)


def record_from_row(row: Any, password: SecretMetadata | None) -> ExchangeRecord:
    """The record of a ``configs_table`` row (trusted: it was validated when saved)."""
    return ExchangeRecord(
        id=row.id,
        config=ExchangeConfig(
            display_name=row.display_name,
            username=row.username,
            test_mailbox=row.test_mailbox,
            ews_url=row.ews_url,
            autodiscover_email=row.autodiscover_email,
            redirect_hosts=tuple(row.redirect_hosts),
            auth=row.auth,
            verify_tls=bool(row.verify_tls),
        ),
        password=password,
        **bookkeeping_of(row),
    )


def config_values(config: ExchangeConfig) -> dict[str, Any]:
    """The table columns of ``config``."""
    return {
        "display_name": config.display_name,
        "ews_url": config.ews_url,
        "autodiscover_email": config.autodiscover_email,
        "redirect_hosts": list(config.redirect_hosts),
        "username": config.username,
        "auth": config.auth,
        "verify_tls": config.verify_tls,
        "test_mailbox": config.test_mailbox,
    }
