"""``hybridge edge serve``: the TLS listeners, the connections, and the relay between them.

One asyncio loop (uvloop's, when importable: the CLI installs it). Each accepted TCP
connection gets a TLS handshake with a deadline (our own ``loop.start_tls`` on the paused
transport, so a failed handshake is ours to log and count, not asyncio's), then our peer
check against the listener's zones (``identity.judge``) before a single SIP byte is read.
Admitted connections feed a ``SipStream``; the relay's decisions are carried out here.

Bounds on what a peer can make the edge hold or wait for:

- ``handshake_timeout``: a TCP connection that does not finish TLS in time is closed;
- ``header_timeout``: once the first byte of a message has arrived, the whole message must
  arrive within this time (a peer sending one byte a second is closed; nginx's
  ``client_header_timeout`` and Kamailio's ``tcp_msg_read_timeout`` do the same);
- ``idle_timeout`` on cloud connections without traffic (traversal connections stay up:
  the connector keeps them alive with CRLF pings, RFC 5626 §3.5.1, answered here);
- the codec's message-size limits: a message over them closes its connection only;
- ``max_connections``: inbound connections held at once, handshaking or admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import ssl
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from cryptography import x509

from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PONG,
    Ping,
    Request,
    Response,
    SipError,
    SipStream,
    serialize,
)
from hybridge.core.tlsverify import AnchorSet, PeerRole, anchor_set_for
from hybridge.edge.connection import (
    Connection,
    TlsStreamProtocol,
    UnreadProtocol,
    flush,
    peer_label,
)
from hybridge.edge.errors import EdgeSetupError
from hybridge.edge.identity import (
    TOO_MANY_CONNECTIONS,
    Admitted,
    Refusal,
    handshake_refusal,
    judge,
)
from hybridge.edge.metrics import EdgeMetrics
from hybridge.edge.relay import Answer, Drop, Forward, Relay, SendTo, Side
from hybridge.edge.settings import EdgeSettings
from hybridge.edge.zones import Zone, ZoneKind
from hybridge.tls import TlsError, client_context, server_context

log = logging.getLogger("hybridge.edge")
_READ_SIZE = 65_536


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
        self._ids = itertools.count(1)
        self._connections: dict[int, Connection] = {}
        self._by_side: dict[Side, list[Connection]] = {Side.CLOUD: [], Side.TRAVERSAL: []}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._dial_lock = asyncio.Lock()
        self._counters: dict[tuple[Side, str], Any] = {}
        self._inbound = 0
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
        for side, port in ((Side.CLOUD, s.cloud_port), (Side.TRAVERSAL, s.traversal_port)):
            try:
                loop = asyncio.get_running_loop()
                server = await loop.create_server(
                    functools.partial(UnreadProtocol, functools.partial(self._accepted, side)),
                    s.host,
                    port,
                )
            except OSError as exc:
                await self.close()
                raise EdgeSetupError(
                    f"cannot listen on {s.host}:{port} for the {side.value} side: {exc.strerror}"
                ) from exc
            self._servers.append(server)
            self.ports[side] = server.sockets[0].getsockname()[1]
        self.relay = Relay(host=s.advertise or s.host, ports=self.ports)
        log.info(
            "edge listening: cloud on %s:%d (zones %s), traversal on %s:%d (zones %s)",
            s.host,
            self.ports[Side.CLOUD],
            ", ".join(z.name for z in self.dns_zones) or "none",
            s.host,
            self.ports[Side.TRAVERSAL],
            ", ".join(z.name for z in self.traversal_zones) or "none",
        )

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
        for conn in list(self._connections.values()):
            outcome = judge(
                conn.writer.get_extra_info("ssl_object"),
                self.dns_zones if conn.side is Side.CLOUD else self.traversal_zones,
                anchors=self._anchors,
                role=PeerRole.SERVER if conn.dialled else PeerRole.CLIENT,
                limits=self.settings.chain_limits,
            )
            if isinstance(outcome, Refusal):
                self._close(conn, f"reload_{outcome.reason}", f"after reload: {outcome.line}")
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
        for conn in list(self._connections.values()):
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        await asyncio.gather(*(server.serve_forever() for server in self._servers))

    # -- accepting -------------------------------------------------------------------------

    def _refuse(self, side: Side, peer: str, refusal: Refusal, *, outbound: bool = False) -> None:
        # One line per refused connection, and one count under its reason.
        where = "dial-out" if outbound else "listener"
        log.warning(
            "%s %s: %s [peer %s, reason %s]", side.value, where, refusal.line, peer, refusal.reason
        )
        self.metrics.refused.labels(side.value, refusal.reason).inc()

    def _accepted(self, side: Side, transport: asyncio.Transport) -> None:
        if self._inbound >= self.settings.max_connections:
            # A bound on what connecting peers can make the edge hold (handshake state,
            # tasks): past it, refuse before any TLS work.
            self._refuse(
                side,
                peer_label(transport),
                Refusal(
                    TOO_MANY_CONNECTIONS,
                    f"{self._inbound} connections are open, the limit "
                    f"(max_connections {self.settings.max_connections}); closed at once",
                ),
            )
            transport.abort()
            return
        self._inbound += 1
        task = self._spawn(self._accept(side, transport))
        task.add_done_callback(self._inbound_done)

    def _inbound_done(self, _task: asyncio.Task[None]) -> None:
        self._inbound -= 1

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, side: Side, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        peer = peer_label(transport)
        zones = self.dns_zones if side is Side.CLOUD else self.traversal_zones
        reader = asyncio.StreamReader(limit=_READ_SIZE, loop=loop)
        protocol = TlsStreamProtocol(reader, loop=loop)
        try:
            tls_transport = await loop.start_tls(
                transport,
                protocol,
                self._server_ctx,
                server_side=True,
                ssl_handshake_timeout=self.settings.handshake_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self._refuse(side, peer, handshake_refusal(exc))
            transport.abort()
            return
        assert tls_transport is not None
        writer = asyncio.StreamWriter(tls_transport, protocol, reader, loop)
        assert self._anchors is not None
        outcome = judge(
            tls_transport.get_extra_info("ssl_object"),
            zones,
            anchors=self._anchors,
            role=PeerRole.CLIENT,
            limits=self.settings.chain_limits,
        )
        if isinstance(outcome, Refusal):
            self._refuse(side, peer, outcome)
            tls_transport.abort()
            return
        await self._run(side, outcome, reader, writer, peer)

    async def _run(
        self,
        side: Side,
        admitted: Admitted,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        conn = Connection(next(self._ids), side, admitted.zone, reader, writer, peer)
        self.metrics.accepted.labels(side.value, admitted.zone.name).inc()
        log.info(
            "%s listener: admitted %s as zone %s (%s %s) [conn %d]",
            side.value,
            peer,
            admitted.zone.name,
            admitted.verdict.source.value,
            admitted.verdict.identity,
            conn.conn_id,
        )
        await self._serve_connection(conn)

    # -- one admitted connection -------------------------------------------------------------

    def _register(self, conn: Connection) -> None:
        self._connections[conn.conn_id] = conn
        self._by_side[conn.side].append(conn)
        self.metrics.open.labels(conn.side.value).inc()

    def _unregister(self, conn: Connection) -> None:
        if self._connections.pop(conn.conn_id, None) is not None:
            self._by_side[conn.side].remove(conn)
            self.metrics.open.labels(conn.side.value).dec()

    def _close(self, conn: Connection, reason: str, line: str) -> None:
        log.warning(
            "%s connection %d (%s, zone %s) closed: %s [reason %s]",
            conn.side.value,
            conn.conn_id,
            conn.label,
            conn.zone.name,
            line,
            reason,
        )
        self.metrics.closed.labels(conn.side.value, reason).inc()
        conn.writer.transport.abort()

    async def _serve_connection(self, conn: Connection, *, registered: bool = False) -> None:
        s = self.settings
        stream = SipStream(max_message_size=s.max_message_size)
        if not registered:
            self._register(conn)
        message_started: float | None = None
        timeout: float | None
        batch: set[Connection] = set()
        try:
            while True:
                if stream.buffered:
                    message_started = message_started or time.monotonic()
                    timeout = message_started + s.header_timeout - time.monotonic()
                else:
                    message_started = None
                    timeout = s.idle_timeout if conn.side is Side.CLOUD else None
                try:
                    # asyncio.timeout, not wait_for: no extra task per read on the hot path
                    async with asyncio.timeout(timeout):
                        data = await conn.reader.read(_READ_SIZE)
                except TimeoutError:
                    if stream.buffered:
                        self._close(
                            conn,
                            "header_timeout",
                            f"message incomplete after {s.header_timeout:g}s "
                            f"({stream.buffered} bytes received)",
                        )
                    else:
                        self._close(conn, "idle_timeout", f"idle for {timeout:g}s")
                    return
                except (OSError, ssl.SSLError) as exc:
                    log.info("%s connection %d lost: %s", conn.side.value, conn.conn_id, exc)
                    return
                try:
                    stream.receive_data(data)
                    while True:
                        event = stream.next_event()
                        if event is NEED_DATA:
                            break
                        if event is CLOSED:
                            log.info(
                                "%s connection %d closed by peer", conn.side.value, conn.conn_id
                            )
                            return
                        await self._dispatch(conn, event, batch)
                except SipError as exc:
                    reason = "message_too_large" if exc.status_hint in (413, 513) else "bad_message"
                    self._close(conn, reason, f"{exc} (SIP {exc.status_hint})")
                    return
                finally:
                    await flush(batch)
                if not data:
                    return
        finally:
            self._unregister(conn)
            if not conn.writer.is_closing():
                conn.writer.close()

    def _count(self, side: Side, action: str) -> None:
        child = self._counters.get((side, action))
        if child is None:
            child = self._counters[(side, action)] = self.metrics.messages.labels(
                side.value, action
            )
        child.inc()

    async def _dispatch(self, conn: Connection, event: object, batch: set[Connection]) -> None:
        relay = self.relay
        assert relay is not None
        if isinstance(event, Ping):
            conn.queue(PONG, batch)
            return
        if isinstance(event, Request):
            action = relay.on_request(event, side=conn.side, conn_id=conn.conn_id)
        elif isinstance(event, Response):
            action = relay.on_response(event)
        else:
            return
        if isinstance(action, Forward):
            target = self._by_side[action.to][-1] if self._by_side[action.to] else None
            if target is None:
                await flush(batch)  # keep order: what was queued goes before a dial
                target = await self._route(action.to)
            if target is None:
                self._count(conn.side, "no_route")
                if isinstance(event, Request) and event.method != "ACK":
                    # RFC 3261 §16.11: a stateless proxy may answer; nobody to relay to.
                    answer = event.response(503, "Service Unavailable", to_tag="hb-edge")
                    conn.queue(serialize(answer), batch)
                return
            self._count(conn.side, "forwarded")
            target.queue(action.data, batch)
        elif isinstance(action, SendTo):
            target = self._connections.get(action.conn_id)
            if target is None:
                self._count(conn.side, "dropped")
                log.info("response for closed connection %d dropped", action.conn_id)
                return
            self._count(conn.side, "forwarded")
            target.queue(action.data, batch)
        elif isinstance(action, Answer):
            self._count(conn.side, f"answered_{action.status}")
            conn.queue(action.data, batch)
        elif isinstance(action, Drop):
            self._count(conn.side, "dropped")
            log.info("%s connection %d: dropped: %s", conn.side.value, conn.conn_id, action.reason)

    # -- routing to the other side ---------------------------------------------------------

    async def _route(self, side: Side) -> Connection | None:
        """The connection a request for ``side`` goes out on: the newest one up, or a dial."""
        existing = self._by_side[side]
        if existing:
            return existing[-1]
        if side is Side.CLOUD:
            return await self._dial_cloud()
        return None

    async def _dial_cloud(self) -> Connection | None:
        async with self._dial_lock:
            if self._by_side[Side.CLOUD]:
                return self._by_side[Side.CLOUD][-1]
            for zone in self.dns_zones:
                if zone.peer is None:
                    continue
                conn = await self._dial(zone)
                if conn is not None:
                    return conn
            return None

    async def _dial(self, zone: Zone) -> Connection | None:
        assert zone.peer is not None and self._anchors is not None
        target = str(zone.peer)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    zone.peer.host,
                    zone.peer.port,
                    ssl=self._client_ctx,
                    server_hostname=zone.subject_name,
                    ssl_handshake_timeout=self.settings.handshake_timeout,
                ),
                self.settings.connect_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._refuse(Side.CLOUD, target, handshake_refusal(exc), outbound=True)
            return None
        # Outbound: the cloud is the TLS server and must pass the same zone name rule.
        outcome = judge(
            writer.get_extra_info("ssl_object"),
            (zone,),
            anchors=self._anchors,
            role=PeerRole.SERVER,
            limits=self.settings.chain_limits,
        )
        if isinstance(outcome, Refusal):
            self._refuse(Side.CLOUD, target, outcome, outbound=True)
            writer.transport.abort()
            return None
        conn = Connection(next(self._ids), Side.CLOUD, zone, reader, writer, target)
        conn.dialled = True
        self.metrics.accepted.labels(Side.CLOUD.value, zone.name).inc()
        log.info("cloud side: dialled %s for zone %s [conn %d]", target, zone.name, conn.conn_id)
        self._register(conn)
        self._spawn(self._serve_connection(conn, registered=True))
        return conn
