"""What the connector needs to reach Exchange Online through Microsoft Graph.

App-only access (OAuth 2.0 client credentials): an Entra app registration (tenant id,
client id) proves itself with a client secret or a certificate; which mailboxes it may
read and write is decided in Exchange Online by *RBAC for Applications* (a management role
assignment such as ``Application Calendars.ReadWrite``, scoped to the enabled users), not
by the token. Nothing here is secret except the credential, held as a vault ``Secret``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hybridge.calendar.errors import CalendarSettingsError
from hybridge.vault.secret import Secret

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_UPN = re.compile(r"^[^@\s\\]{1,64}@[A-Za-z0-9.\-]{1,253}$")

PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_GRAPH_URL = "https://graph.microsoft.com/v1.0"


def _https(value: str, name: str) -> str:
    parts = urlsplit(value)
    # The client secret (token endpoint) and bearer tokens (Graph) cross these: TLS only.
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise CalendarSettingsError(
            f"{name} {value!r} must be an https:// URL with a host and no query"
        )
    return value.rstrip("/")


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate credential: the PEM private key (secret) and its PEM certificate."""

    private_key_pem: Secret = field(repr=False)
    certificate_pem: bytes = field(repr=False)

    def __post_init__(self) -> None:
        try:
            cert = x509.load_pem_x509_certificate(self.certificate_pem)
        except ValueError as exc:
            raise CalendarSettingsError("certificate_pem must be a PEM certificate") from exc
        try:
            key = serialization.load_pem_private_key(self.private_key_pem.reveal(), None)
        except (ValueError, TypeError):
            # Not chained: the parser's exception may quote the key material.
            key = None
        if key is None:
            raise CalendarSettingsError("private_key_pem must be an unencrypted PEM private key")
        # Entra ID accepts RSA certificate credentials only (RS256/PS256 assertions).
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise CalendarSettingsError(
                f"the certificate credential must use an RSA key of at least 2048 bits, "
                f"not {type(key).__name__.removeprefix('_')}"
            )
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise CalendarSettingsError(
                "private_key_pem does not belong to the certificate in certificate_pem"
            )


@dataclass(frozen=True)
class GraphSettings:
    """An Exchange Online (Graph) configuration.

    Exactly one of ``client_secret`` and ``certificate`` is set. ``authority_host`` and
    ``graph_url`` default to the global cloud; national clouds and tests override them.
    The calendar view a delta query follows spans ``window_past_days`` before and
    ``window_future_days`` after the first sync; the window moves forward (a resync) when
    half of its future has passed.
    """

    tenant_id: str
    client_id: str
    test_mailbox: str
    client_secret: Secret | None = field(default=None, repr=False)
    certificate: ClientCertificate | None = field(default=None, repr=False)
    authority_host: str = PUBLIC_AUTHORITY_HOST
    graph_url: str = PUBLIC_GRAPH_URL
    window_past_days: int = 30
    window_future_days: int = 365
    timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        if not _GUID.match(self.tenant_id):
            raise CalendarSettingsError(
                f"tenant_id {self.tenant_id!r} must be the directory (tenant) id, a GUID"
            )
        if not _GUID.match(self.client_id):
            raise CalendarSettingsError(
                f"client_id {self.client_id!r} must be the application (client) id, a GUID"
            )
        if not _UPN.match(self.test_mailbox):
            raise CalendarSettingsError(
                f"test_mailbox {self.test_mailbox!r} is not an address like room1@example.com"
            )
        if (self.client_secret is None) == (self.certificate is None):
            raise CalendarSettingsError("set exactly one of client_secret and certificate")
        if self.client_secret is not None and not len(self.client_secret):
            raise CalendarSettingsError("client_secret must not be empty")
        object.__setattr__(self, "authority_host", _https(self.authority_host, "authority_host"))
        object.__setattr__(self, "graph_url", _https(self.graph_url, "graph_url"))
        if not 0 <= self.window_past_days <= 365:
            raise CalendarSettingsError(
                f"window_past_days {self.window_past_days!r} must be in [0, 365]"
            )
        if not 7 <= self.window_future_days <= 1825:
            raise CalendarSettingsError(
                f"window_future_days {self.window_future_days!r} must be in [7, 1825]"
            )
        if not 0 < self.timeout_seconds <= 300:
            raise CalendarSettingsError(
                f"timeout_seconds {self.timeout_seconds!r} must be in (0, 300]"
            )
        object.__setattr__(self, "tenant_id", self.tenant_id.lower())
        object.__setattr__(self, "client_id", self.client_id.lower())

    @property
    def authority(self) -> str:
        """The tenant's authority URL msal uses, e.g. https://login.microsoftonline.com/<id>."""
        return f"{self.authority_host}/{self.tenant_id}"
