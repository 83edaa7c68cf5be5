"""What the connector needs to reach Exchange through EWS, validated on construction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hybridge.calendar.errors import CalendarSettingsError

AUTH_METHODS = ("NTLM", "Basic")
_DOWN_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}\\[^\\/@\s]{1,104}$")
_UPN = re.compile(r"^[^@\s\\]{1,64}@[A-Za-z0-9.\-]{1,253}$")


@dataclass(frozen=True)
class EwsSettings:
    """An Exchange configuration minus its password (the password lives in the vault).

    Exactly one of ``ews_url`` (``https://mail.example.com/EWS/Exchange.asmx``) and
    ``autodiscover_email`` is set. ``username`` is ``DOMAIN\\user`` or a UPN.
    ``autodiscover_redirect_hosts`` lists the hosts Autodiscover may redirect to.
    """

    username: str
    test_mailbox: str
    ews_url: str | None = None
    autodiscover_email: str | None = None
    auth: str = "NTLM"
    autodiscover_redirect_hosts: frozenset[str] = field(default_factory=frozenset)
    timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        if (self.ews_url is None) == (self.autodiscover_email is None):
            raise CalendarSettingsError(
                "set exactly one of ews_url and autodiscover_email, "
                f"got ews_url={self.ews_url!r}, autodiscover_email={self.autodiscover_email!r}"
            )
        if self.ews_url is not None:
            parts = urlsplit(self.ews_url)
            # TLS is always on for EWS: the impersonation password crosses this connection.
            if parts.scheme != "https" or not parts.hostname:
                raise CalendarSettingsError(
                    f"ews_url {self.ews_url!r} must be an https:// URL with a host"
                )
        if self.autodiscover_email is not None and not _UPN.match(self.autodiscover_email):
            raise CalendarSettingsError(
                f"autodiscover_email {self.autodiscover_email!r} is not an address like "
                "user@example.com"
            )
        if not (_DOWN_LEVEL.match(self.username) or _UPN.match(self.username)):
            raise CalendarSettingsError(
                f"username {self.username!r} must be DOMAIN\\user or user@domain (UPN)"
            )
        if not _UPN.match(self.test_mailbox):
            raise CalendarSettingsError(
                f"test_mailbox {self.test_mailbox!r} is not an address like room1@example.com"
            )
        if self.auth not in AUTH_METHODS:
            raise CalendarSettingsError(f"auth {self.auth!r} must be one of {AUTH_METHODS}")
        if not 0 < self.timeout_seconds <= 300:
            raise CalendarSettingsError(
                f"timeout_seconds {self.timeout_seconds!r} must be in (0, 300]"
            )
        object.__setattr__(
            self,
            "autodiscover_redirect_hosts",
            frozenset(h.lower().rstrip(".") for h in self.autodiscover_redirect_hosts),
        )
