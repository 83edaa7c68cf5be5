"""The traversal client: the connector dials out to the edge and keeps that connection up.

The connector sits behind the premises firewall, so it opens the traversal connection
(Expressway-C's traversal client): mutual TLS to the edge's traversal listener, then CRLF
keep-alives (RFC 5626 §3.5.1) over it, and SIP relayed between it and the premises SIP
server: ``traversal_forwarding`` reads every connection and carries out the decisions of
the sans-IO relay (``traversal_relay``).

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
import time
from collections.abc import Callable
from typing import NoReturn

from hybridge.connector import traversal_metrics as metrics
from hybridge.connector.credentials import CredentialStore
from hybridge.connector.traversal_config import TraversalConfig, TraversalStore
from hybridge.connector.traversal_errors import EdgeUnreachable, TraversalError
from hybridge.connector.traversal_forwarding import PremisesForwarding
from hybridge.connector.traversal_inbound import PremisesListening
from hybridge.connector.traversal_link import (
    Link,
    TraversalSettings,
    TraversalStatus,
    edge_context,
    judge_server,
    open_stream,
)
from hybridge.connector.traversal_relay import Relay, Side, TraversalRelay
from hybridge.core.errors import HybridgeError
from hybridge.core.sip import PING, Request, Response
from hybridge.truststore import TrustStore

log = logging.getLogger("hybridge.connector.traversal")


class _Reconfigured(Exception):
    """The stored configuration changed: drop the connection and dial the new one."""


class TraversalClient(PremisesForwarding, PremisesListening):
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
