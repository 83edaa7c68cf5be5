"""The premises-side listener: the connector accepts the premises server's own connections.

A PBX (or Kamailio) that places a call to the cloud dials its SIP trunk itself; with a
``PremisesListener`` configured, the connector listens for it (TCP or TLS) and hands each
admitted connection to the traversal client, which relays its requests to the edge and
sends the responses back over the same connection (``hxc`` in our Via, RFC 5923-style).

Admission, in order, before a single SIP byte is read:

1. **Address**: the peer's IP must be in the allow-list (default: the addresses the
   premises URI's host resolves to). Checked before TLS, so a stranger costs no handshake.
2. **TLS** (``transport = tls``): the connector presents its certificate (the dedicated
   traversal certificate, else the registration's). With ``require_client_cert`` the
   premises server must present one: OpenSSL validates it against the PLATFORM anchors
   during the handshake, then ``hybridge.tls.check_peer`` runs our path validation and the
   premises TLS name rule (``core.tlsverify``: SAN dNSName / SIP URI host, CN only without
   SAN, no wildcard) — the same two-validator rule as every other TLS peer here.
3. **Count**: at most ``max_premises_connections`` at once.

Every refusal is one log line with the reason, counted in
``hybridge_connector_traversal_listener_refused_total{reason}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from hybridge.connector import traversal_metrics as metrics
from hybridge.connector.traversal_config import PremisesServer
from hybridge.connector.traversal_errors import ListenerUnavailable
from hybridge.connector.traversal_link import Link, TraversalSettings
from hybridge.connector.traversal_listener_config import IpNetwork, PremisesListener
from hybridge.connector.traversal_relay import Side
from hybridge.core.tlsverify import NamePolicy, PeerRole, RefusalReason, Refused, Use
from hybridge.tls import TlsError, check_peer, server_context
from hybridge.tls.refusal import handshake_refusal, name_mismatch_refusal, verdict_refusal
from hybridge.vault import Secret

log = logging.getLogger("hybridge.connector.traversal")


def listener_context(
    listener: PremisesListener,
    anchors: Sequence[x509.Certificate],
    certificate_pem: bytes,
    key: Secret,
) -> ssl.SSLContext:
    """The server context of a TLS listener (blocking: writes the key to a private temp file
    for OpenSSL and removes it). Raises ``ListenerUnavailable``.
    """
    with tempfile.TemporaryDirectory(prefix="hybridge-listener-") as directory:
        cert_path = Path(directory) / "cert.pem"
        key_path = Path(directory) / "key.pem"
        for path, data in ((cert_path, certificate_pem), (key_path, key.reveal())):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            if listener.require_client_cert:
                # CERT_REQUIRED against the platform anchors; our check_peer follows.
                return server_context(anchors, cert_file=cert_path, key_file=key_path)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # RFC 8996 / RFC 9325 §3.1.1: TLS 1.2 at least, as on every other context here.
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.options |= ssl.OP_NO_TICKET
            context.load_cert_chain(str(cert_path), str(key_path))
            return context
        except (TlsError, ssl.SSLError, OSError) as exc:
            raise ListenerUnavailable(
                f"cannot set up TLS on the premises listener {listener}: {exc}"
            ) from exc


async def allowed_networks(
    listener: PremisesListener, premises: PremisesServer
) -> tuple[IpNetwork, ...]:
    """The allow-list, or (when empty) the premises server's addresses, one host each.

    Raises ``ListenerUnavailable`` when the premises host name does not resolve.
    """
    if listener.allow:
        return listener.networks
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            premises.host, None, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise ListenerUnavailable(
            f"the listener's default allow-list is the premises server's addresses, but "
            f"{premises.host!r} does not resolve ({exc}); give --listen-allow"
        ) from exc
    return tuple({ipaddress.ip_network(info[4][0]) for info in infos})


def _peer_ip(address: tuple[Any, ...]) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(str(address[0]).split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


def _peer_text(address: tuple[Any, ...]) -> str:
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


class PremisesAcceptor:
    """A running listener; ``on_link`` serves each admitted connection until it ends.

    Sockets are accepted here (``sock_accept``) and wrapped only once admitted
    (``connect_accepted_socket``, which does the server-side TLS handshake): nothing a
    refused peer sends is ever read, and a TLS client's ClientHello, sent at once, cannot
    be consumed by a plain stream reader before the TLS layer exists.
    """

    def __init__(
        self,
        listener: PremisesListener,
        premises: PremisesServer,
        *,
        context: ssl.SSLContext | None,
        anchors: Sequence[x509.Certificate],
        allowed: tuple[IpNetwork, ...],
        settings: TraversalSettings,
        on_link: Callable[[Link], Awaitable[None]],
    ) -> None:
        self.listener = listener
        self.premises = premises
        self._context = context
        self._anchors = anchors
        self._allowed = allowed
        self._settings = settings
        self._on_link = on_link
        self._ids = itertools.count(1)
        self._open = 0
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen. Raises ``ListenerUnavailable`` (address in use, ...)."""
        family = socket.AF_INET6 if ":" in self.listener.host else socket.AF_INET
        try:
            sock = socket.create_server(
                (self.listener.host, self.listener.port), family=family, backlog=128
            )
        except OSError as exc:
            raise ListenerUnavailable(
                f"cannot listen on {self.listener} for the premises server: "
                f"{os.strerror(exc.errno) if exc.errno else exc}"
            ) from exc
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        """Stop listening and close every connection it accepted."""
        tasks = list(self._handlers)
        if self._accepting is not None:
            tasks.append(self._accepting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
        self._sock = self._accepting = None

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn, address = await loop.sock_accept(self._sock)
            except OSError as exc:  # EMFILE and the like: wait, do not spin
                log.warning(
                    "traversal: premises listener %s: accept failed: %s", self.listener, exc
                )
                await asyncio.sleep(0.5)
                continue
            task = loop.create_task(self._handle(conn, address))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _refuse(self, peer: str, reason: str, why: str) -> None:
        metrics.LISTENER_REFUSED.labels(reason).inc()
        log.warning(
            "traversal: premises listener %s refused %s: %s [reason %s]",
            self.listener,
            peer,
            why,
            reason,
        )

    async def _handle(self, conn: socket.socket, address: tuple[Any, ...]) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            admitted = await self._admit(conn, address)
            if admitted is not None:
                reader, writer = admitted
                link = Link(
                    Side.PREMISES, reader, writer, self._settings.sip_stream(), next(self._ids)
                )
                log.info(
                    "traversal: premises listener %s admitted %s as premises connection %d",
                    self.listener,
                    _peer_text(address),
                    link.conn_id,
                )
                await self._on_link(link)
        finally:
            if writer is not None:
                writer.transport.abort()
                self._open -= 1
            else:
                conn.close()

    async def _admit(
        self, conn: socket.socket, address: tuple[Any, ...]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The admitted connection's streams, or None (refused, logged, counted)."""
        peer = _peer_text(address)
        ip = _peer_ip(address)
        # Admission step 1: only the configured premises server may send calls to the cloud.
        if not any(ip in network for network in self._allowed):
            allowed = ", ".join(str(n) for n in self._allowed) or "nothing"
            self._refuse(peer, "address_not_allowed", f"{ip} is not in the allow-list ({allowed})")
            return None
        if self._open >= self._settings.max_premises_connections:
            limit = self._settings.max_premises_connections
            self._refuse(peer, "too_many_connections", f"{limit} connections are open")
            return None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        timeout = self._settings.connect_timeout
        try:
            transport, _ = await asyncio.wait_for(
                loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=self._context,
                    ssl_handshake_timeout=timeout if self._context is not None else None,
                ),
                timeout + 1,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            # OpenSSL's validation against the platform anchors failed (untrusted, expired),
            # or the handshake did: worded and coded as the edge and the cloud do.
            refusal = handshake_refusal(exc, trust_store="the connector's platform trust store")
            self._refuse(peer, refusal.reason, refusal.line)
            return None
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self._open += 1
        if self._context is not None and not self._judge(writer, peer):
            writer.transport.abort()
            self._open -= 1
            return None
        return reader, writer

    def _judge(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        if not self.listener.require_client_cert:
            return True
        name = self.premises.name
        verdict = check_peer(
            writer.get_extra_info("ssl_object"),
            names=NamePolicy(name),
            anchors=self._anchors,
            role=PeerRole.CLIENT,
            use=Use.PLATFORM,
        )
        # hybridge.tls: no application data before an Accepted verdict.
        if isinstance(verdict, Refused):
            refusal = (
                name_mismatch_refusal(
                    verdict.presented_names, expected_by="the premises listener", expected=name
                )
                if verdict.reason is RefusalReason.NAME_MISMATCH
                else verdict_refusal(verdict)
            )
            self._refuse(peer, refusal.reason, refusal.line)
            return False
        return True
