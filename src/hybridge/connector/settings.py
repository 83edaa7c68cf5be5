"""The connector's settings: its data directory, public URL and where its anchors come from."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hybridge.web.auth import WebSettings
from hybridge.web.clock import Clock, system_clock
from hybridge.web.throttle import ThrottlePolicy

COOKIE_NAME = "__Host-hybridge-connector"
CLIENT_ID = "hybridge-connector"
CALLBACK_PATH = "/registration/callback"
#: How long a started registration waits for the admin to come back from the cloud. The
#: cloud's codes live 10 minutes (RFC 6749 §4.1.2); the login on the portal comes before.
REGISTRATION_WINDOW = dt.timedelta(minutes=30)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class ConnectorSettings:
    """Everything ``create_app`` needs. ``clock`` is injected so tests move time."""

    data_dir: Path
    #: The URL the admin's browser uses for this connector (the OAuth redirect_uri's base).
    base_url: str
    #: The connector's DNS name, sent to the cloud and put in the CSR (default: base URL host).
    hostname: str | None = None
    #: Bootstrap anchors (default: ``HYBRIDGE_BOOTSTRAP_CA_FILE`` or the packaged set).
    bootstrap_file: Path | None = None
    database_url: str | None = None
    clock: Clock = system_clock
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    #: Seconds for each HTTPS exchange with the cloud (connect, read, write).
    cloud_timeout: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme != "https" or not parts.hostname or self.base_url.endswith("/"):
            raise ValueError(
                f"base URL {self.base_url!r} must start with https:// and not end with '/'"
            )
        name = self.connector_hostname
        if not _HOSTNAME.match(name):
            raise ValueError(f"connector hostname {name!r} is not a DNS name")

    @property
    def connector_hostname(self) -> str:
        """The DNS name the cloud registers this connector under."""
        host = self.hostname or urlsplit(self.base_url).hostname or ""
        return host.strip().lower().rstrip(".")

    @property
    def redirect_uri(self) -> str:
        return self.base_url + CALLBACK_PATH

    @property
    def web(self) -> WebSettings:
        return WebSettings(cookie_name=COOKIE_NAME, throttle=self.throttle)
