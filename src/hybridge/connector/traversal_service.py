"""The traversal client: the connector dials out to the edge and keeps that connection up.

The connector sits behind the premises firewall, so it opens the traversal connection
(Expressway-C's traversal client): mutual TLS to the edge's traversal listener, then CRLF
keep-alives (RFC 5626 §3.5.1) over it, and SIP relayed between it and the premises SIP
server (``traversal_relay``).

Trust. The edge's certificate is validated against the trust store's PLATFORM anchors —
never the bootstrap set (DESIGN.md §3 invariant 1) — twice, as ``hybridge.tls`` prescribes:
OpenSSL during the handshake (``tls.client_context``), then ``tls.check_peer`` with the
configured edge name (``core.tlsverify`` name rules) before a single byte is written. The
connector presents the dedicated traversal certificate when one is configured (its key in
the vault), else the client certificate from registration. The premises server, over TLS,
is checked the same way against its own name.

Liveness. The connection counts as *connected* once the edge answers the first keep-alive:
the edge reads nothing before it has admitted our certificate, so a pong proves admission
(a refused connector sees its connection closed instead). A pong missing for
``pong_timeout`` seconds (RFC 5626 §4.4.1: 10 s) fails the flow. Every failure is logged
with its reason, kept as ``last_error``, counted, and followed by a re-dial after a capped
exponential back-off with full jitter (``core.control.Backoff``), reset after a connection
that was admitted. Configuration changes (CLI, page, API) are picked up without a restart.

Premises listener (optional, ``traversal_listener``): the premises server may also dial
the connector; its connections live as long as the configuration (not the edge
connection), and a request arriving while the edge is down is answered 503.

Slow and oversize peers: on every connection (edge, dialled premises, accepted premises) a
message begun must be finished within ``header_timeout`` and stay within the codec's
limits; otherwise that connection alone is closed (the edge's one is then re-dialled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from hybridge.connector import traversal_metrics as metrics
from hybridge.connector.credentials import CredentialStore
from hybridge.connector.traversal_config import PremisesServer, TraversalConfig, TraversalStore
from hybridge.connector.traversal_errors import (
    EdgeUnreachable,
    MessageTimedOut,
    TraversalError,
)
from hybridge.connector.traversal_inbound import PremisesListening
from hybridge.connector.traversal_link import (
    Link,
    TraversalSettings,
    TraversalStatus,
    edge_context,
    judge_server,
    open_stream,
)
from hybridge.connector.traversal_relay import Answer, Drop, Relay, Side, TraversalRelay
from hybridge.core.errors import HybridgeError
from hybridge.core.sip import (
    CLOSED,
    NEED_DATA,
    PING,
    PONG,
    Ping,
    Pong,
    Request,
    Response,
    SipError,
    serialize,
)
from hybridge.tls import client_context
from hybridge.truststore import TrustStore
from hybridge.truststore.interfaces import TrustUse

log = logging.getLogger("hybridge.connector.traversal")
#: Messages for the premises held while its connection is being opened; past it, 503.
MAX_PENDING = 64


class _Reconfigured(Exception):
    """The stored configuration changed: drop the connection and dial the new one."""


class TraversalClient(PremisesListening):
    """Keeps the traversal connection up while a configuration is stored; see the module.

    ``host`` is the connector's name in the Vias it adds. ``random`` draws the jitter.
    """

    def __init__(
        self,
        store: TraversalStore,
        trust: TrustStore,
        credentials: CredentialStore,
        *,
        host: str,
        settings: TraversalSettings | None = None,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.trust = trust
        self.credentials = credentials
        self.host = host
        self.settings = settings or TraversalSettings()
        self.status = TraversalStatus()
        self._random = random
        self._task: asyncio.Task[None] | None = None
        self._links: dict[Side, Link] = {}
        self._relay: TraversalRelay | None = None
        self._pong: asyncio.Future[None] | None = None
        self._pending: list[tuple[Relay, Request | Response]] = []
        self._dialling = False
        self._premises_task: asyncio.Task[None] | None = None
        self._admitted = False
        self._last_logged: str | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        # One key per process for our Via MACs: a relay rebuilt after a reconfiguration
        # still recognises the responses to requests it relayed before.
        self._relay_key = secrets.token_bytes(32)
        self._acceptor = None
        self._acceptor_for = None
        self._inbound = {}

    # -- start / stop (the app's lifespan) -----------------------------------------------

    def start(self) -> None:
        """Run the client in a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="traversal-client")

    async def stop(self) -> None:
        """Cancel the client and close its connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._stop_listener()
        metrics.CONNECTED.set(0)
        metrics.PREMISES_CONNECTED.set(0)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: read the configuration, connect, serve, back off, re-dial."""
        attempt = 0
        while True:
            try:
                record = await asyncio.to_thread(self.store.get)
            except HybridgeError as exc:  # the database is unavailable: keep trying
                self.status.fail(f"cannot read the traversal configuration: {exc}")
                log.warning("traversal: %s", self.status.last_error)
                await asyncio.sleep(self.settings.config_poll)
                continue
            if record is None:
                await self._stop_listener()
                self.status = TraversalStatus(redials=self.status.redials)
                attempt = 0
                await asyncio.sleep(self.settings.config_poll)
                continue
            config = record.config
            self.status.edge = str(config.edge)
            self._relay = self._make_relay(config)
            await self._ensure_listener(config)
            self._admitted = False
            try:
                await self._session(config)
            except asyncio.CancelledError:
                raise
            except _Reconfigured:
                log.info("traversal: configuration changed; re-dialling")
                continue
            except TraversalError as exc:
                reason, message = exc.reason, str(exc)
            except HybridgeError as exc:  # trust store, vault: log, keep trying
                reason, message = "setup_error", str(exc)
            except Exception as exc:  # never let the client die: log and re-dial
                reason, message = "internal", f"{exc.__class__.__name__}: {exc}"
                log.exception("traversal: unexpected failure")
            finally:
                await self._teardown()
            if self._admitted:
                attempt = 0  # a connection the edge admitted ends the back-off sequence
            self.status.state = "waiting"
            self.status.connected_since = None
            self.status.fail(message)
            metrics.FAILURES.labels(reason).inc()
            delay = self.settings.backoff.delay(attempt, self._random())
            attempt += 1
            self.status.redials += 1
            metrics.REDIALS.inc()
            # A new reason is a warning; the same one again (the edge still down) is info,
            # so an outage of hours does not bury the log in identical warnings.
            level = logging.INFO if message == self._last_logged else logging.WARNING
            self._last_logged = message
            log.log(
                level,
                "traversal: %s [reason %s]; re-dialling the edge %s in %.2fs (attempt %d)",
                message,
                reason,
                config.edge,
                delay,
                attempt,
            )
            await self._wait(delay, config)

    async def _wait(self, delay: float, config: TraversalConfig) -> None:
        # Sleep the back-off, but wake early when the admin changes the configuration.
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.settings.config_poll))
            try:
                record = await asyncio.to_thread(self.store.get)
            except HybridgeError:
                continue  # no news; ``run`` reports a database that stays unavailable
            if record is None or record.config != config:
                return

    def _background(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _teardown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.status.connected_since = None
        self._pending.clear()
        metrics.CONNECTED.set(0)
        metrics.PREMISES_CONNECTED.set(0)
        self.status.premises_connected = False
        if self._premises_task is not None:
            self._premises_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._premises_task
            self._premises_task = None
        for link in self._links.values():
            link.writer.transport.abort()
        self._links.clear()
        self._pong = None

    # -- one traversal connection ----------------------------------------------------------

    async def _session(self, config: TraversalConfig) -> NoReturn:
        self.status.state = "connecting"
        context, anchors = await asyncio.to_thread(
            edge_context, config, self.trust, self.store, self.credentials
        )
        edge = config.edge
        reader, writer = await open_stream(
            edge.host, edge.port, context, config.edge_name, "edge", self.settings.connect_timeout
        )
        judge_server(writer, config.edge_name, anchors, f"edge {edge}")
        link = Link(Side.EDGE, reader, writer, self.settings.sip_stream(expect_pongs=True))
        self._links[Side.EDGE] = link
        tasks = [
            asyncio.create_task(self._keepalive(link, config)),
            asyncio.create_task(self._read(link, config)),
            asyncio.create_task(self._watch(config)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        error = next(iter(done)).exception()
        raise error or EdgeUnreachable("the traversal connection ended")

    async def _watch(self, config: TraversalConfig) -> None:
        while True:
            await asyncio.sleep(self.settings.config_poll)
            record = await asyncio.to_thread(self.store.get)
            if record is None or record.config != config:
                raise _Reconfigured
            await self._retry_listener(config)

    async def _keepalive(self, link: Link, config: TraversalConfig) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._pong = loop.create_future()
            sent = time.monotonic()
            link.send(PING)  # RFC 5626 §3.5.1: CRLFCRLF; the edge answers CRLF
            try:
                await asyncio.wait_for(self._pong, self.settings.pong_timeout)
            except TimeoutError:
                raise EdgeUnreachable(
                    f"no keep-alive pong from the edge within {self.settings.pong_timeout:g}s "
                    "(RFC 5626 §4.4.1: the flow has failed)"
                ) from None
            rtt = time.monotonic() - sent
            self.status.last_ping_rtt = rtt
            metrics.PING_RTT.set(rtt)
            if Side.PREMISES not in self._links:
                # Keep the premises connection up too, so the premises server can place
                # calls to the cloud over it (it sends them on the connection we opened).
                self._ensure_premises(config)
            if not self._admitted:
                self._admitted = True
                self.status.state = "connected"
                self.status.connected_since = time.time()
                metrics.CONNECTED.set(1)
                log.info(
                    "traversal: connected to the edge %s as %s (verified as %s; keep-alive "
                    "every %gs, rtt %.1f ms)",
                    config.edge,
                    "the traversal certificate"
                    if config.certificate_pem
                    else "the registration certificate",
                    config.edge_name,
                    config.keepalive_interval,
                    rtt * 1000,
                )
            await asyncio.sleep(config.keepalive_interval)

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

    # -- relaying ----------------------------------------------------------------------------

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
