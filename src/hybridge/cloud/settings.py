"""The cloud's settings: where its data, certificates and keys are, and its public URL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from hybridge.cloud.callservice_settings import CallServiceSettings
from hybridge.storage.db import sqlite_url
from hybridge.web.auth import WebSettings
from hybridge.web.clock import Clock, system_clock
from hybridge.web.throttle import ThrottlePolicy

COOKIE_NAME = "__Host-hybridge-cloud"
CLIENT_ID = "hybridge-connector"
#: RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
CODE_LIFETIME = dt.timedelta(minutes=10)
#: Connector client certificates; renewal rides on the control channel (a later issue).
CLIENT_CERT_LIFETIME = dt.timedelta(days=365)


@dataclass(frozen=True)
class CloudSettings:
    """Everything ``create_app`` needs. Paths are read at startup; ``clock`` is injected."""

    data_dir: Path
    base_url: str
    server_cert: Path
    callservice_cert: Path | None = None
    connector_ca_cert: Path | None = None
    connector_ca_key: Path | None = None
    list_signing_key: Path | None = None
    ca_roots: Path | None = None
    database_url: str | None = None
    clock: Clock = system_clock
    code_lifetime: dt.timedelta = CODE_LIFETIME
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    #: The call-service SIP peer; ``None``: the cloud runs without it (no --sip-port).
    callservice: CallServiceSettings | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith("https://") or self.base_url.endswith("/"):
            raise ValueError(
                f"base URL {self.base_url!r} must start with https:// and not end with '/'"
            )

    @property
    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir / "cloud.db")

    @property
    def web(self) -> WebSettings:
        return WebSettings(cookie_name=COOKIE_NAME, throttle=self.throttle)

    @property
    def control_url(self) -> str:
        return "wss://" + self.base_url.removeprefix("https://") + "/control"
