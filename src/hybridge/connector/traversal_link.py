"""The pieces of the traversal client that are not its loop: settings, status, TLS.

``edge_context`` builds the client context from the trust store's PLATFORM anchors
(``hybridge.tls.client_context`` via ``control_link.tls_context``) and the certificate the
connector presents; ``open_stream`` dials with bounded timeouts and translates ``ssl`` and
``OSError`` failures into the traversal errors; ``judge_server`` runs
``hybridge.tls.check_peer`` with the expected name before the caller sends anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from hybridge.connector.control_link import tls_context
from hybridge.connector.credentials import CredentialStore
from hybridge.connector.traversal_config import TraversalConfig, TraversalStore
from hybridge.connector.traversal_errors import (
    EdgeRefused,
    EdgeUnreachable,
    MessageTimedOut,
    TraversalError,
    TraversalIdentityMissing,
)
from hybridge.connector.traversal_relay import Side
from hybridge.core.control import Backoff
from hybridge.core.errors import HybridgeError
from hybridge.core.sip import DEFAULT_MAX_MESSAGE_SIZE, SipStream
from hybridge.core.tlsverify import NamePolicy, PeerRole, RefusalReason, Refused, Use
from hybridge.tls import check_peer
from hybridge.tls.refusal import (
    handshake_refusal,
    is_refused_by_peer,
    name_mismatch_refusal,
    verdict_refusal,
)
from hybridge.truststore import TrustStore
from hybridge.truststore.interfaces import TrustUse
from hybridge.vault import Secret


@dataclass(frozen=True)
class TraversalSettings:
    """Timing knobs; ``from_env`` reads ``HYBRIDGE_TRAVERSAL_*`` for ``connector serve``.

    ``HYBRIDGE_TRAVERSAL_BACKOFF_BASE``  first re-dial ceiling (s, default 1)
    ``HYBRIDGE_TRAVERSAL_BACKOFF_CAP``   largest re-dial ceiling (s, default 60)
    ``HYBRIDGE_TRAVERSAL_POLL``          how often the configuration is re-read (s, default 2)
    ``HYBRIDGE_TRAVERSAL_HEADER_TIMEOUT`` time to finish a begun message (s, default 5)
    """

    backoff: Backoff = field(default_factory=Backoff)
    connect_timeout: float = 10.0
    #: RFC 5626 §4.4.1: no pong within 10 seconds means the flow has failed.
    pong_timeout: float = 10.0
    config_poll: float = 2.0
    #: Once a message's first byte has arrived, the rest must arrive within this time, on
    #: every connection the connector holds (the edge's ``header_timeout`` default; nginx's
    #: ``client_header_timeout`` and Kamailio's ``tcp_msg_read_timeout`` do the same): a
    #: peer trickling one byte a second cannot hold a connection and its buffer forever.
    header_timeout: float = 5.0
    #: The codec's limits (``hybridge.core.sip``; 64 KiB like Kamailio's BUF_SIZE): a
    #: larger message closes its connection only.
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    #: Connections the premises server may hold open to the listener at once (a PBX needs
    #: one or a few; the bound stops an allowed but faulty peer from exhausting sockets).
    max_premises_connections: int = 32

    def sip_stream(self, *, expect_pongs: bool = False) -> SipStream:
        """A ``SipStream`` with these limits."""
        return SipStream(
            max_message_size=self.max_message_size,
            max_body_size=self.max_message_size,
            expect_pongs=expect_pongs,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TraversalSettings:
        """Raises ValueError when a value is not a positive number (or base > cap)."""
        env = os.environ if environ is None else environ
        poll = float(env.get("HYBRIDGE_TRAVERSAL_POLL", "2"))
        if not poll > 0:
            raise ValueError(f"HYBRIDGE_TRAVERSAL_POLL {poll!r} must be a positive number")
        header_timeout = float(env.get("HYBRIDGE_TRAVERSAL_HEADER_TIMEOUT", "5"))
        if not header_timeout > 0:
            raise ValueError(
                f"HYBRIDGE_TRAVERSAL_HEADER_TIMEOUT {header_timeout!r} must be a positive number"
            )
        return cls(
            backoff=Backoff(
                float(env.get("HYBRIDGE_TRAVERSAL_BACKOFF_BASE", "1")),
                float(env.get("HYBRIDGE_TRAVERSAL_BACKOFF_CAP", "60")),
            ),
            config_poll=poll,
            header_timeout=header_timeout,
        )


@dataclass
class TraversalStatus:
    """The live state pages and ``/api/traversal`` show (no secret in it)."""

    state: str = "not_configured"
    edge: str | None = None
    connected_since: float | None = None
    last_ping_rtt: float | None = None
    redials: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    premises_connected: bool = False
    premises_error: str | None = None
    listener: str | None = None
    listener_error: str | None = None
    premises_inbound: int = 0
    relayed: dict[str, int] = field(default_factory=lambda: {"to_edge": 0, "to_premises": 0})

    def fail(self, message: str) -> None:
        """Record ``message`` (one line, no secret) as the last error, now."""
        self.last_error, self.last_error_at = message, time.time()

    def view(self) -> dict[str, Any]:
        """A JSON-ready copy (times as Unix seconds, plus ``connected_since_utc`` for people)."""
        since = self.connected_since
        return {
            "state": self.state,
            "edge": self.edge,
            "connected_since": since,
            "connected_since_utc": None
            if since is None
            else dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "last_ping_rtt": self.last_ping_rtt,
            "redials": self.redials,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "premises_connected": self.premises_connected,
            "premises_error": self.premises_error,
            "listener": self.listener,
            "listener_error": self.listener_error,
            "premises_inbound": self.premises_inbound,
            "relayed": dict(self.relayed),
        }


@dataclass
class Link:
    """One stream connection: to the edge or the premises server (``conn_id`` 0, the
    connector dialled it), or from the premises server to our listener (``conn_id`` > 0)."""

    side: Side
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stream: SipStream
    conn_id: int = 0
    #: Loop time when the incomplete message now buffered began (None: none buffered).
    message_started: float | None = None

    @property
    def name(self) -> str:
        """``edge``, ``premises`` or ``premises connection N`` for log lines."""
        if self.conn_id:
            return f"premises connection {self.conn_id}"
        return self.side.value

    def send(self, data: bytes) -> None:
        """Queue ``data`` (one whole message or keep-alive) on the connection."""
        # One write per message: asyncio appends it whole to the transport's buffer, so
        # messages from concurrent tasks never interleave on the wire.
        self.writer.write(data)

    async def receive(self, header_timeout: float, size: int = 65_536) -> bytes:
        """The next bytes from the peer (``b""`` when it closed).

        While an incomplete message is buffered, waits only until ``header_timeout`` after
        that message began; the caller resets ``message_started`` when a message completes.
        Raises ``MessageTimedOut`` then; ``OSError``/``ssl.SSLError`` pass through.
        """
        timeout: float | None = None
        if self.stream.buffered:
            now = time.monotonic()
            if self.message_started is None:
                self.message_started = now
            timeout = self.message_started + header_timeout - now
        else:
            self.message_started = None
        if timeout is not None and timeout <= 0:
            raise self._timed_out(header_timeout)
        try:
            return await asyncio.wait_for(self.reader.read(size), timeout)
        except TimeoutError:
            raise self._timed_out(header_timeout) from None

    def _timed_out(self, header_timeout: float) -> MessageTimedOut:
        return MessageTimedOut(
            f"the {self.name} left a message incomplete for {header_timeout:g}s "
            f"({self.stream.buffered} bytes buffered); connection closed"
        )


def identity(
    config: TraversalConfig, store: TraversalStore, credentials: CredentialStore
) -> tuple[bytes, Secret]:
    """The certificate chain (PEM) and key the connector presents to the edge.

    The dedicated traversal certificate when one is configured, else the registration's
    client certificate. Raises ``TraversalIdentityMissing`` when there is neither.
    """
    if config.certificate_pem is not None:
        key = store.key()
        if key is None:
            raise TraversalIdentityMissing(
                "the traversal certificate's key is missing from the vault; set it again "
                "with 'hybridge connector traversal set --cert ... --key ...'"
            )
        return config.certificate_pem.encode(), key
    registration = credentials.current()
    if registration is None:
        raise TraversalIdentityMissing(
            "no certificate to present to the edge: no traversal certificate is "
            "configured and the connector is not registered; set one with 'hybridge "
            "connector traversal set --cert FILE --key FILE' or register the connector"
        )
    return registration.client_certificate_pem.encode(), credentials.key_for(registration)


def edge_context(
    config: TraversalConfig,
    trust: TrustStore,
    store: TraversalStore,
    credentials: CredentialStore,
) -> tuple[ssl.SSLContext, tuple[x509.Certificate, ...]]:
    """The client context for the edge and the anchors it trusts (blocking: disk, vault).

    Raises ``TraversalIdentityMissing``, or ``TraversalError`` when TLS cannot be set up
    (no anchor in the trust store, an unusable certificate).
    """
    # DESIGN.md §3 invariant 1: the platform set (manual + cloud), never the bootstrap.
    anchors = trust.anchors_for(TrustUse.PLATFORM)
    cert_pem, key = identity(config, store, credentials)
    try:
        context = tls_context(anchors, cert_pem, key.reveal())
    except HybridgeError as exc:
        raise TraversalError(f"cannot set up TLS to the edge: {exc}") from exc
    return context, anchors


async def open_stream(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    server_name: str,
    what: str,
    timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP (``context`` None) or TLS stream to ``host:port`` within ``timeout`` seconds.

    Raises ``EdgeRefused`` (a ``hybridge.tls.refusal`` reason: ``untrusted_issuer``,
    ``expired``, ``refused_by_peer``...) when OpenSSL's path validation fails or the peer
    refuses our certificate, ``EdgeUnreachable`` for anything else; ``what`` names the peer.
    """
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=server_name if context is not None else None,
                ssl_handshake_timeout=timeout if context is not None else None,
            ),
            timeout,
        )
    except ssl.SSLError as exc:
        if isinstance(exc, ssl.SSLCertVerificationError) or is_refused_by_peer(exc):
            # OpenSSL's path validation against the platform anchors failed (untrusted
            # issuer, expired, ...), or the peer refused our certificate: the handshake
            # never completed, nothing was sent. Worded and coded as the edge does.
            refusal = handshake_refusal(exc, trust_store="the platform trust store")
            raise EdgeRefused(f"{what} {host}:{port}: {refusal.line}", refusal.reason) from exc
        raise EdgeUnreachable(
            f"TLS handshake with {what} {host}:{port} failed: {exc.reason or exc}"
        ) from exc
    except TimeoutError as exc:
        raise EdgeUnreachable(f"{what} {host}:{port} did not answer within {timeout:g}s") from exc
    except OSError as exc:
        raise EdgeUnreachable(
            f"cannot connect to {what} {host}:{port}: {exc.strerror or exc}"
        ) from exc


def judge_server(writer: asyncio.StreamWriter, name: str, anchors: Any, what: str) -> None:
    """Our check of the TLS server on ``writer`` for ``name``; aborts and raises
    ``EdgeRefused`` (the verdict's reason) on refusal."""
    verdict = check_peer(
        writer.get_extra_info("ssl_object"),
        names=NamePolicy(name),
        anchors=anchors,
        role=PeerRole.SERVER,
        use=Use.PLATFORM,
    )
    # hybridge.tls: no application data before an Accepted verdict.
    if isinstance(verdict, Refused):
        writer.transport.abort()
        refusal = (
            name_mismatch_refusal(
                verdict.presented_names, expected_by="the traversal configuration", expected=name
            )
            if verdict.reason is RefusalReason.NAME_MISMATCH
            else verdict_refusal(verdict)
        )
        raise EdgeRefused(f"{what} refused: {refusal.line}", refusal.reason)
