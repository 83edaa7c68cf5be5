"""How the traversal client moves SIP (a mixin of ``TraversalClient``): the read loop of
every link, the relay's decisions carried out, and the premises connection dialled on demand.

``traversal_service`` keeps the edge connection up (dial, judge, keep-alive, back-off);
this module handles what arrives on it and on the premises connections. Every link — the
edge's, the one dialled to the premises server, those the premises listener accepted — is
read by ``_read`` under the header timeout and the codec's limits; each message goes
through the sans-IO ``TraversalRelay`` (``traversal_relay``), whose ``Relay``, ``Answer``
or ``Drop`` is carried out here. Responses return over the connection their request came
in on (RFC 5923-style, by the ``conn_id`` in our Via). The premises server is dialled in the
background when a message needs it, never from the edge's reader (which must keep seeing
keep-alive pongs); messages wait for it, at most ``MAX_PENDING``, and a request that cannot
be forwarded is answered 503 (RFC 3261 §16.11).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from hybridge.connector import traversal_metrics as metrics
from hybridge.connector.traversal_errors import EdgeUnreachable, MessageTimedOut, TraversalError
from hybridge.connector.traversal_link import (
    Link,
    TraversalSettings,
    TraversalStatus,
    judge_server,
    open_stream,
)
from hybridge.connector.traversal_relay import Answer, Drop, Relay, Side, TraversalRelay
from hybridge.core.errors import HybridgeError
from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PONG,
    Ping,
    Pong,
    Request,
    Response,
    SipError,
    serialize,
)
from hybridge.tls import client_context
from hybridge.truststore.interfaces import TrustUse

if TYPE_CHECKING:
    from hybridge.connector.traversal_config import PremisesServer, TraversalConfig
    from hybridge.truststore import TrustStore

log = logging.getLogger("hybridge.connector.traversal")
#: Messages for the premises held while its connection is being opened; past it, 503.
MAX_PENDING = 64


class PremisesForwarding:
    """Reads the client's links and carries out the relay's decisions; see the module."""

    trust: TrustStore
    host: str
    settings: TraversalSettings
    status: TraversalStatus
    _links: dict[Side, Link]
    _inbound: dict[int, Link]
    _relay: TraversalRelay | None
    _relay_key: bytes
    _pong: asyncio.Future[None] | None
    _pending: list[tuple[Relay, Request | Response]]
    _dialling: bool
    _premises_task: asyncio.Task[None] | None
    _tasks: set[asyncio.Task[object]]

    def _background(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, link: Link, config: TraversalConfig) -> None:
        """Relay what ``link`` receives until it closes; raises for the edge's link."""
        edge = link.side is Side.EDGE
        while True:
            try:
                data = await link.receive(self.settings.header_timeout)
            except MessageTimedOut as exc:
                # A slow or stalled sender: the connection goes, its buffer with it.
                metrics.CONNECTIONS_CLOSED.labels(link.side.value, exc.reason).inc()
                if edge:
                    raise
                log.warning("traversal: %s", exc)
                return
            except (OSError, ssl.SSLError) as exc:
                data, lost = b"", str(exc)
            else:
                lost = "closed by the peer"
            try:
                link.stream.receive_data(data)
                while (event := link.stream.next_event()) is not NEED_DATA:
                    link.message_started = None  # progress: the header timer restarts
                    if event is CLOSED:
                        break
                    if isinstance(event, Pong):
                        if self._pong is not None and not self._pong.done():
                            self._pong.set_result(None)
                    elif isinstance(event, Ping):
                        link.send(PONG)
                    elif isinstance(event, Request | Response):
                        self._dispatch(event, link, config)
            except SipError as exc:
                # Over the codec's limits or unframeable: this connection only is closed;
                # the stream cannot find the next message boundary (core.sip.stream).
                metrics.CONNECTIONS_CLOSED.labels(link.side.value, "bad_message").inc()
                message = f"the {link.name} sent a message we cannot frame: {exc}"
                if edge:
                    raise TraversalError(message + "; connection closed") from exc
                log.warning("traversal: %s; connection closed", message)
                return
            if not data:
                if edge:
                    before = (
                        ""
                        if self.status.state == "connected"
                        else (
                            " before answering the first keep-alive (did the edge refuse our "
                            "certificate? its log says why)"
                        )
                    )
                    raise EdgeUnreachable(
                        f"the edge closed the traversal connection{before} ({lost})"
                    )
                log.info("traversal: %s %s", link.name, lost)
                return

    def _dispatch(self, message: Request | Response, origin: Link, config: TraversalConfig) -> None:
        relay = self._relay
        assert relay is not None
        side = origin.side
        if isinstance(message, Request):
            action = relay.on_request(message, side, origin.conn_id)
        else:
            action = relay.on_response(message, side)
        if isinstance(action, Relay):
            if action.conn_id:
                # RFC 5923-style: back over the premises connection the request came in on.
                inbound = self._inbound.get(action.conn_id)
                if inbound is not None and not inbound.writer.is_closing():
                    self._relayed(inbound, action, message)
                else:
                    metrics.DROPPED.inc()
                    log.info(
                        "traversal: response for closed premises connection %d dropped",
                        action.conn_id,
                    )
                return
            link = self._links.get(action.to)
            if link is not None and not link.writer.is_closing():
                self._relayed(link, action, message)
            elif action.to is Side.PREMISES:
                # Never wait for a dial here: this runs in the edge's reader, and a reader
                # blocked for the connect timeout would miss the keep-alive pongs. The
                # message waits (bounded) until the premises connection is up.
                if len(self._pending) >= MAX_PENDING:
                    self._unavailable(message, origin)
                else:
                    self._pending.append((action, message))
                    self._ensure_premises(config)
            else:
                self._unavailable(message, origin)
        elif isinstance(action, Answer):
            origin.send(action.data)
            metrics.ANSWERED.labels(str(action.status)).inc()
        elif isinstance(action, Drop):
            metrics.DROPPED.inc()
            log.info("traversal: %s message dropped: %s", side.value, action.reason)

    def _relayed(self, link: Link, action: Relay, message: Request | Response) -> None:
        link.send(action.data)
        direction = f"to_{action.to.value}"
        self.status.relayed[direction] += 1
        kind = "request" if isinstance(message, Request) else "response"
        metrics.RELAYED.labels(direction, kind).inc()

    def _unavailable(self, message: Request | Response, link: Link | None) -> None:
        if isinstance(message, Request) and message.method != "ACK" and link is not None:
            # RFC 3261 §16.11: a stateless proxy may answer when it cannot forward.
            answer = message.response(503, "Service Unavailable", to_tag="hb-connector")
            link.send(serialize(answer))
            metrics.ANSWERED.labels("503").inc()
        else:
            metrics.DROPPED.inc()

    def _ensure_premises(self, config: TraversalConfig) -> None:
        """Start one background dial of the premises server unless one is running."""
        if not self._dialling:
            self._dialling = True
            self._background(self._dial_and_flush(config))

    async def _dial_and_flush(self, config: TraversalConfig) -> None:
        try:
            link = await self._premises(config)
        finally:
            self._dialling = False
        pending, self._pending = self._pending, []
        for action, message in pending:  # in arrival order
            if link is not None and not link.writer.is_closing():
                self._relayed(link, action, message)
            else:
                self._unavailable(message, self._links.get(Side.EDGE))

    async def _premises(self, config: TraversalConfig) -> Link | None:
        """The connection to the premises server, dialled when there is none."""
        premises = config.premises
        link = self._links.get(Side.PREMISES)
        if link is not None and not link.writer.is_closing():
            return link
        try:
            link = await self._dial_premises(premises)
        except (TraversalError, HybridgeError) as exc:
            self.status.premises_error = str(exc)
            log.warning("traversal: premises server %s: %s", premises.uri, exc)
            return None
        self._links[Side.PREMISES] = link
        self.status.premises_connected, self.status.premises_error = True, None
        metrics.PREMISES_CONNECTED.set(1)
        log.info("traversal: connected to the premises server %s", premises.uri)
        self._premises_task = asyncio.create_task(self._serve_premises(link, config))
        return link

    async def _dial_premises(self, premises: PremisesServer) -> Link:
        context = None
        anchors: Any = ()
        if premises.transport == "tls":
            anchors = await asyncio.to_thread(self.trust.anchors_for, TrustUse.PLATFORM)
            context = client_context(anchors)
        reader, writer = await open_stream(
            premises.host,
            premises.port,
            context,
            premises.name,
            "premises server",
            self.settings.connect_timeout,
        )
        if context is not None:
            # Over TLS the premises server is judged like the edge: platform anchors, name.
            judge_server(writer, premises.name, anchors, f"premises server {premises.uri}")
        return Link(Side.PREMISES, reader, writer, self.settings.sip_stream())

    async def _serve_premises(self, link: Link, config: TraversalConfig) -> None:
        try:
            await self._read(link, config)
        except Exception:  # the premises link must not take the client down: log, re-open
            log.exception("traversal: premises connection failed")
        finally:
            if self._links.get(Side.PREMISES) is link:
                del self._links[Side.PREMISES]
            link.writer.transport.abort()
            self.status.premises_connected = False
            metrics.PREMISES_CONNECTED.set(0)

    def _make_relay(self, config: TraversalConfig) -> TraversalRelay:
        listener = config.listener
        record_route = None
        if listener is not None:
            # The Record-Route names the listener as the premises server reaches it: its
            # bound address, or the connector's host name when bound to every address.
            rr_host = self.host if listener.wildcard else listener.host
            record_route = (rr_host, listener.port, listener.transport)
        return TraversalRelay(
            host=self.host,
            transports={Side.EDGE: "TLS", Side.PREMISES: config.premises.transport.upper()},
            key=self._relay_key,
            record_route=record_route,
        )
