"""The pieces of the connector's channel that are not the loop: settings, status, TLS.

``tls_context`` builds the client context from the trust store's PLATFORM anchors with
``hybridge.tls.client_context`` and the client certificate from registration;
``checked_connection`` is the ``websockets`` connection class that runs
``hybridge.tls.check_peer`` as soon as TLS is up and aborts before any HTTP byte is
written when our verdict is a refusal (see ``connector.control``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from websockets.asyncio.client import ClientConnection

from hybridge.connector.errors import ConnectorError
from hybridge.core.control import (
    Backoff,
)
from hybridge.core.tlsverify import NamePolicy, PeerRole, Refused, Use
from hybridge.tls import check_peer, client_context


class ChannelError(ConnectorError):
    """The control channel could not be opened or was closed by the cloud."""


@dataclass(frozen=True)
class ChannelSettings:
    """Knobs of the channel; ``from_env`` reads ``HYBRIDGE_CONTROL_*`` for ``connector serve``.

    ``HYBRIDGE_CONTROL_BACKOFF_BASE``  first reconnect ceiling (s, default 1)
    ``HYBRIDGE_CONTROL_BACKOFF_CAP``   largest reconnect ceiling (s, default 60)
    ``HYBRIDGE_CONTROL_ALARM_AFTER``   unreachable time before the alarm (s, default 300)
    """

    backoff: Backoff = field(default_factory=Backoff)
    alarm_after: float = 300.0
    open_timeout: float = 10.0
    registration_poll: float = 2.0
    #: Until the cloud's welcome says otherwise.
    heartbeat_interval: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.alarm_after <= 30 * 86400:
            raise ValueError(
                f"offline alarm delay {self.alarm_after!r}; 0 < seconds <= 2592000 (30 days)"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ChannelSettings:
        """Raises ValueError when a value is not a positive number (or base > cap)."""
        env = dict(os.environ if environ is None else environ)
        return cls(
            backoff=Backoff(
                float(env.get("HYBRIDGE_CONTROL_BACKOFF_BASE", "1")),
                float(env.get("HYBRIDGE_CONTROL_BACKOFF_CAP", "60")),
            ),
            alarm_after=float(env.get("HYBRIDGE_CONTROL_ALARM_AFTER", "300")),
        )


@dataclass
class ChannelStatus:
    """What the dashboard and ``/api/control`` show (no secret in it). Times are POSIX
    seconds (UTC), ``None`` until the event first happens."""

    state: str = "starting"
    since: float = field(default_factory=time.time)
    last_error: str | None = None
    unreachable_since: float | None = None
    #: When the next connection attempt is due while reconnecting (back-off).
    next_attempt_at: float | None = None
    attempt: int = 0
    alarms: list[str] = field(default_factory=list)
    last_push: dict[str, Any] | None = None
    connections: int = 0
    heartbeat_interval: float = 30.0
    last_heartbeat_sent: float | None = None
    #: The cloud answered the WebSocket ping sent right after the heartbeat: it has read
    #: the heartbeat (frames arrive in order on the one TCP stream).
    last_heartbeat_acked: float | None = None
    installed_seq: int | None = None
    #: The cloud's current CA-list sequence at the last welcome.
    cloud_seq: int | None = None

    def set(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()

    def view(self) -> dict[str, Any]:
        """A JSON-ready copy (``GET /api/control``)."""
        return {
            "state": self.state,
            "since": self.since,
            "last_error": self.last_error,
            "unreachable_since": self.unreachable_since,
            "next_attempt_at": self.next_attempt_at if self.state == "offline" else None,
            "attempt": self.attempt,
            "alarms": list(self.alarms),
            "last_push": dict(self.last_push) if self.last_push else None,
            "connections": self.connections,
            "heartbeat_interval": self.heartbeat_interval,
            "last_heartbeat_sent": self.last_heartbeat_sent,
            "last_heartbeat_acked": self.last_heartbeat_acked,
            "installed_seq": self.installed_seq,
            "cloud_seq": self.cloud_seq,
        }


def checked_connection(
    host: str, anchors: tuple[x509.Certificate, ...], refusals: list[Refused]
) -> type[ClientConnection]:
    names = NamePolicy(host)

    class _CheckedConnection(ClientConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            # uvloop's SSL transport (uvicorn's default loop once uvloop is installed) has
            # the Transport API without subclassing asyncio.Transport: no isinstance check.
            transport = cast(asyncio.Transport, transport)
            conn = transport.get_extra_info("ssl_object")
            verdict = (
                check_peer(
                    conn, names=names, anchors=anchors, role=PeerRole.SERVER, use=Use.PLATFORM
                )
                if conn is not None
                else None
            )
            # hybridge.tls: no application data before an Accepted verdict.
            if verdict is None or isinstance(verdict, Refused):
                if isinstance(verdict, Refused):
                    refusals.append(verdict)
                transport.abort()

    return _CheckedConnection


def tls_context(
    anchors: tuple[x509.Certificate, ...], certificate_pem: bytes, key_pem: bytes
) -> ssl.SSLContext:
    # ssl loads identities from files only: a private directory (0700), 0600 files, removed
    # as soon as the context holds them.
    with tempfile.TemporaryDirectory(prefix="hybridge-control-") as directory:
        cert_path = Path(directory) / "cert.pem"
        key_path = Path(directory) / "key.pem"
        for path, data in ((cert_path, certificate_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return client_context(anchors, cert_file=cert_path, key_file=key_path)
