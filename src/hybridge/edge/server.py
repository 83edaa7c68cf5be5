"""``hybridge edge serve``: the TLS listeners, the admission of peers, and the wiring.

One asyncio loop (uvloop's, when importable: the CLI installs it). Each accepted TCP
connection is a ``Connection`` protocol that does its own TLS handshake with a deadline
(``connection.py`` says why), so a failed handshake is ours to log and count; then our
peer check against the listener's zones (``identity.judge``, with its verdict cache) before
a single SIP byte is read. Admitted connections are handed to the ``Dispatcher``
(``dispatch.py``), which relays what they read: each message takes the relay's fast path
(``Relay.on_frame``, bytes spliced) or, when it is not plain, the full codec
(``Relay.on_request``/``on_response``), and forwards are written once per loop iteration.
A request for the cloud side with no cloud connection up goes to the ``CloudDialer``
(``dialout.py``).

Bounds on what a peer can make the edge hold or wait for:

- ``handshake_timeout``: a TCP connection that does not finish TLS in time is closed;
- ``header_timeout``: once the first byte of a message has arrived, the whole message must
  arrive within this time (a peer sending one byte a second is closed; nginx's
  ``client_header_timeout`` and Kamailio's ``tcp_msg_read_timeout`` do the same);
- ``idle_timeout`` on cloud connections without traffic (traversal connections stay up:
  the connector keeps them alive with CRLF pings, RFC 5626 §3.5.1, answered here);
- the codec's message-size limits: a message over them closes its connection only;
- ``max_connections``: inbound connections held at once, handshaking or admitted;
- ``connection.MAX_WRITE_BACKLOG``: a peer that stops reading is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import Sequence

from cryptography import x509

from hybridge.core.sip import Frame
from hybridge.core.tlsverify import AnchorSet, PeerRole, anchor_set_for
from hybridge.edge.connection import Connection, InboundConnection
from hybridge.edge.dialout import CloudDialer
from hybridge.edge.dispatch import Dispatcher
from hybridge.edge.errors import EdgeSetupError
from hybridge.edge.identity import (
    TOO_MANY_CONNECTIONS,
    Refusal,
    VerdictCache,
    handshake_refusal,
    judge,
)
from hybridge.edge.metrics import EdgeMetrics
from hybridge.edge.relay import Forward, Relay, Side
from hybridge.edge.settings import EdgeSettings
from hybridge.edge.zones import Zone, ZoneKind
from hybridge.tls import TlsError, client_context, server_context

log = logging.getLogger("hybridge.edge")


class EdgeServer:
    """The edge: two TLS listeners, the zones, the trust anchors and the relay.

    Raises ``EdgeSetupError`` from ``start`` when the certificate, the anchors or the ports
    cannot be used.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        zones: Sequence[Zone],
        anchors: Sequence[x509.Certificate],
        *,
        metrics: EdgeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.dns_zones = tuple(z for z in zones if z.kind is ZoneKind.DNS)
        self.traversal_zones = tuple(z for z in zones if z.kind is ZoneKind.TRAVERSAL)
        self.metrics = metrics or EdgeMetrics()
        self._anchor_list = tuple(anchors)
        self._anchors: AnchorSet | None = None
        self._verdicts = VerdictCache()
        self._ids = itertools.count(1)
        self._servers: list[asyncio.Server] = []
        self._inbound = 0
        self._dialer = CloudDialer(self, settings, lambda: self._client_ctx)
        self._dispatch: Dispatcher | None = None
        self.relay: Relay | None = None
        self.ports: dict[Side, int] = {}

    async def start(self) -> None:
        """Bind both listeners. Raises ``EdgeSetupError``."""
        if not self.dns_zones and not self.traversal_zones:
            raise EdgeSetupError(
                "no zone is configured; add one with 'hybridge edge zone add' (anything "
                "matching no zone is refused, so an edge without zones would refuse everyone)"
            )
        s = self.settings
        self._use_anchors(self._anchor_list)
        loop = asyncio.get_running_loop()
        for side, port in ((Side.CLOUD, s.cloud_port), (Side.TRAVERSAL, s.traversal_port)):
            try:
                server = await loop.create_server(
                    functools.partial(self._new_inbound, side), s.host, port
                )
            except OSError as exc:
                await self.close()
                raise EdgeSetupError(
                    f"cannot listen on {s.host}:{port} for the {side.value} side: {exc.strerror}"
                ) from exc
            self._servers.append(server)
            self.ports[side] = server.sockets[0].getsockname()[1]
        self.relay = Relay(host=s.advertise or s.host, ports=self.ports)
        self._dispatch = Dispatcher(self.relay, s, self.metrics, loop, self._no_route)
        log.info(
            "edge listening: cloud on %s:%d (zones %s), traversal on %s:%d (zones %s)",
            s.host,
            self.ports[Side.CLOUD],
            ", ".join(z.name for z in self.dns_zones) or "none",
            s.host,
            self.ports[Side.TRAVERSAL],
            ", ".join(z.name for z in self.traversal_zones) or "none",
        )
        log.info("event loop: %s.%s", type(loop).__module__, type(loop).__qualname__)

    def _use_anchors(self, anchors: Sequence[x509.Certificate]) -> None:
        s = self.settings
        try:
            # Path validation against the edge's own trust store only: the bootstrap set is
            # never passed in (DESIGN §3.1), so it can never admit a peer here.
            server_ctx = server_context(anchors, cert_file=s.cert_file, key_file=s.key_file)
            client_ctx = client_context(anchors, cert_file=s.cert_file, key_file=s.key_file)
        except TlsError as exc:
            raise EdgeSetupError(f"cannot set up TLS: {exc}") from exc
        self._server_ctx, self._client_ctx = server_ctx, client_ctx
        self._anchor_list = tuple(anchors)
        self._anchors = anchor_set_for(self._anchor_list)
        # A verdict reached under the old anchors says nothing under the new ones.
        self._verdicts.clear()

    def reload(self, zones: Sequence[Zone], anchors: Sequence[x509.Certificate]) -> int:
        """Use new zones and anchors, and re-judge every open connection under them.

        New connections are judged by the new configuration at once; an open connection
        that the new one would refuse (a zone removed, its name changed, its CA removed) is
        closed, with its log line. Returns how many were closed. Raises ``EdgeSetupError``
        (and keeps the old configuration) when the new anchors cannot be used.
        """
        self._use_anchors(anchors)
        self.dns_zones = tuple(z for z in zones if z.kind is ZoneKind.DNS)
        self.traversal_zones = tuple(z for z in zones if z.kind is ZoneKind.TRAVERSAL)
        assert self._anchors is not None
        closed = 0
        for conn in list(self._dispatch.connections.values() if self._dispatch else ()):
            outcome = judge(
                conn.ssl_object,
                self.dns_zones if conn.side is Side.CLOUD else self.traversal_zones,
                anchors=self._anchors,
                role=PeerRole.SERVER if conn.dialled else PeerRole.CLIENT,
                limits=self.settings.chain_limits,
                cache=self._verdicts,
            )
            if isinstance(outcome, Refusal):
                self.dispatch.close(
                    conn, f"reload_{outcome.reason}", f"after reload: {outcome.line}"
                )
                closed += 1
            else:
                conn.zone = outcome.zone
        log.info(
            "configuration reloaded: %d zones, %d anchors; %d open connections closed",
            len(zones),
            len(self._anchor_list),
            closed,
        )
        return closed

    async def close(self) -> None:
        """Stop listening and close every connection."""
        for server in self._servers:
            server.close()
        for conn in list(self._dispatch.connections.values() if self._dispatch else ()):
            conn.close()
        self._dialer.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    @property
    def dispatch(self) -> Dispatcher:
        """The admitted connections and the relaying between them (set by ``start``)."""
        assert self._dispatch is not None, "EdgeServer.start() has not run"
        return self._dispatch

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.gather(*(server.serve_forever() for server in self._servers))

    # -- accepting -------------------------------------------------------------------------

    def _refuse(self, side: Side, peer: str, refusal: Refusal, *, outbound: bool = False) -> None:
        # One count under its reason, and one line per refused connection: counted first,
        # so whoever reads the line (a test, an operator) finds it counted already.
        self.metrics.refused.labels(side.value, refusal.reason).inc()
        where = "dial-out" if outbound else "listener"
        log.warning(
            "%s %s: %s [peer %s, reason %s]", side.value, where, refusal.line, peer, refusal.reason
        )

    def _new_inbound(self, side: Side) -> Connection:
        return InboundConnection(
            self,
            side,
            self._server_ctx,
            handshake_timeout=self.settings.handshake_timeout,
            max_message_size=self.settings.max_message_size,
            # headers scanned once, while framed, for the relay's fast path
            head_scanner=self.relay.scanner.scan if self.relay else None,
        )

    def admit_tcp(self, conn: Connection) -> bool:
        """Count a new inbound TCP connection; False (refused, logged) past the limit."""
        if self._inbound >= self.settings.max_connections:
            # A bound on what connecting peers can make the edge hold (handshake state):
            # past it, refuse before any TLS work.
            self._refuse(
                conn.side,
                conn.label,
                Refusal(
                    TOO_MANY_CONNECTIONS,
                    f"{self._inbound} connections are open, the limit "
                    f"(max_connections {self.settings.max_connections}); closed at once",
                ),
            )
            return False
        self._inbound += 1
        return True

    def handshake_failed(self, conn: Connection, exc: BaseException) -> None:
        """``ConnectionOwner``: log and count a failed handshake."""
        self._refuse(conn.side, conn.label, handshake_refusal(exc), outbound=conn.dialled)

    def handshake_done(self, conn: Connection) -> None:
        """``ConnectionOwner``: judge the peer; admit it or close it with its reason."""
        assert self._anchors is not None
        if conn.dialled:
            # Outbound: the cloud is the TLS server and must pass the same zone name rule.
            assert conn.zone is not None
            zones: tuple[Zone, ...] = (conn.zone,)
        else:
            zones = self.dns_zones if conn.side is Side.CLOUD else self.traversal_zones
        outcome = judge(
            conn.ssl_object,
            zones,
            anchors=self._anchors,
            role=PeerRole.SERVER if conn.dialled else PeerRole.CLIENT,
            limits=self.settings.chain_limits,
            cache=self._verdicts,
        )
        if isinstance(outcome, Refusal):
            self._refuse(conn.side, conn.label, outcome, outbound=conn.dialled)
            conn.close()
            return
        conn.zone = outcome.zone
        conn.conn_id = next(self._ids)
        conn.admitted = True
        self.metrics.accepted.labels(conn.side.value, outcome.zone.name).inc()
        if conn.dialled:
            log.info(
                "cloud side: dialled %s for zone %s [conn %d]",
                conn.label,
                outcome.zone.name,
                conn.conn_id,
            )
        else:
            log.info(
                "%s listener: admitted %s as zone %s (%s %s) [conn %d]",
                conn.side.value,
                conn.label,
                outcome.zone.name,
                outcome.verdict.source.value,
                outcome.verdict.identity,
                conn.conn_id,
            )
        self.dispatch.add(conn)

    def lost(self, conn: Connection) -> None:
        """``ConnectionOwner``: forget a connection that is gone."""
        if conn.inbound:
            self._inbound -= 1
        if self._dispatch is not None:
            self._dispatch.remove(conn)

    def expired(self, conn: Connection) -> None:
        """``ConnectionOwner``: the connection's deadline has passed; close it."""
        self.dispatch.expired(conn)

    def data(self, conn: Connection, data: bytes) -> None:
        """``ConnectionOwner``: relay every complete message in ``data``."""
        dispatch = self._dispatch  # once per read: no property on this path
        if dispatch is not None:
            dispatch.data(conn, data)

    # -- routing to the other side ---------------------------------------------------------

    def _no_route(self, conn: Connection, action: Forward, frame: Frame) -> None:
        if action.to is Side.CLOUD and any(z.peer is not None for z in self.dns_zones):
            self._dialer.send(self.dns_zones, conn, action.data, frame)
        else:
            self.unroutable(conn, frame)

    def unroutable(self, conn: Connection, frame: Frame) -> None:
        """``DialOwner``: answer a request that cannot be relayed 503 (not an ACK)."""
        self.dispatch.unroutable(conn, frame)

    def is_open(self, conn: Connection) -> bool:
        """``DialOwner``: True while ``conn`` is admitted and open."""
        return self._dispatch is not None and self._dispatch.is_open(conn)

    def relay_to(self, target: Connection, data: bytes, source: Side) -> None:
        """``DialOwner``: queue a relayed message on ``target``."""
        self.dispatch.relay_to(target, data, source)

    def refuse_dial(self, target: str, refusal: Refusal) -> None:
        """``DialOwner``: log and count a dial-out that failed before TLS."""
        self._refuse(Side.CLOUD, target, refusal, outbound=True)
