"""The call service's SIP-over-TLS listener: mutual TLS with organisations' edges.

An edge dials this listener (its DNS zone's peer address) when a call from the premises
must reach the cloud. Each accepted TCP connection gets a TLS handshake with a deadline,
then ``callservice_peer.judge_edge`` against the cloud's anchors and every organisation's
configured edge name, before a single SIP byte is read. A refused peer costs one log line
that says why, and a count under its reason (``stats.refusals``, and the Prometheus
counters of ``callservice_metrics`` on the cloud's ``/metrics``).

TLS runs over ``ssl.MemoryBIO`` on a plain asyncio stream (``_BioTls``), not through the
loop's own TLS: the listener runs on uvicorn's loop, which is uvloop when installed, and
there ``loop.start_tls`` on a paused accepted connection lost the ClientHello about one
time in three here (the handshake then timed out), while a TLS server set up by the loop
(``start_server(ssl=...)``) reports a refused certificate only at debug level, never in a
line of ours. With memory BIOs every handshake failure is ours to log, on any loop; the
cost (a copy per record) is nothing next to SIP signalling rates.

Admitted connections are framed by ``core.sip.SipStream`` and answered by
``CallServiceUas``; keep-alive pings (RFC 5626 §3.5.1) get their pong. Bounds: the
handshake deadline, a whole message within ``message_timeout`` once begun, an idle
deadline, the codec's size limits (a message over them closes its connection only), and
``max_connections``.

The anchors and the organisations' edges are read for each new connection through
``config`` (a blocking call, run in a thread) before its handshake: a CA-list change or an
edge set in the portal or the CLI applies to the next connection without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hybridge.cloud import callservice_metrics as metrics
from hybridge.cloud.callservice_edges import OrgEdge
from hybridge.cloud.callservice_errors import CallServiceSetupError
from hybridge.cloud.callservice_peer import (
    TOO_MANY_CONNECTIONS,
    Refusal,
    handshake_refusal,
    judge_edge,
)
from hybridge.cloud.callservice_settings import CallServiceSettings
from hybridge.cloud.callservice_uas import CallServiceUas
from hybridge.core.sip import CLOSED, NEED_DATA, PONG, Ping, Request, SipError, SipStream, serialize
from hybridge.core.tlsverify import AnchorSet, PeerRole, anchor_set_for
from hybridge.tls import TlsError, server_context

log = logging.getLogger("hybridge.cloud.callservice")
_READ_SIZE = 65_536


class _BioTls:
    """Server-side TLS over a plain stream with memory BIOs (module docstring says why)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._in, self._out, server_side=True)
        self._reader = reader
        self._writer = writer

    async def _flush(self) -> None:
        data = self._out.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _fill(self) -> bool:
        data = await self._reader.read(_READ_SIZE)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    async def handshake(self) -> None:
        """Complete the handshake. Raises ``ssl.SSLError`` or ``ConnectionResetError``."""
        while True:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError("the peer closed during the handshake") from None
            except ssl.SSLError:
                # Send OpenSSL's alert (bad_certificate, unknown_ca...) so the peer knows.
                with contextlib.suppress(OSError):
                    await self._flush()
                raise
            else:
                await self._flush()
                return

    async def read(self) -> bytes:
        """Decrypted bytes; ``b""`` when the peer closed."""
        while True:
            try:
                return self.ssl_object.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    async def write(self, data: bytes) -> None:
        """Encrypt and send ``data``."""
        self.ssl_object.write(data)
        await self._flush()


@dataclass(frozen=True)
class CallServiceConfig:
    """What a new connection is judged against: the anchors and every organisation's edge."""

    anchors: tuple[x509.Certificate, ...]
    edges: tuple[OrgEdge, ...]


@dataclass
class _Tls:
    fingerprints: tuple[bytes, ...]
    context: ssl.SSLContext
    anchors: AnchorSet


@dataclass
class ListenerStats:
    """Counts for tests and the log: admitted connections, refusals by reason."""

    admitted: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)


class CallServiceServer:
    """The listener. ``start`` binds; ``close`` stops. ``port`` is the bound port.

    Raises ``CallServiceSetupError`` from ``start`` when the certificate, the anchors or the
    port cannot be used.
    """

    def __init__(
        self, settings: CallServiceSettings, config: Callable[[], CallServiceConfig]
    ) -> None:
        self.settings = settings
        self._config = config
        self.uas = CallServiceUas(host=settings.public_host)
        self.stats = ListenerStats()
        self._server: asyncio.Server | None = None
        self._tls: _Tls | None = None
        self._open = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def _tls_for(self, anchors: Sequence[x509.Certificate]) -> _Tls:
        prints = tuple(a.fingerprint(hashes.SHA256()) for a in anchors)
        if self._tls is not None and self._tls.fingerprints == prints:
            return self._tls
        s = self.settings
        try:
            context = server_context(list(anchors), cert_file=s.cert_file, key_file=s.key_file)
        except TlsError as exc:
            raise CallServiceSetupError(f"the call service cannot set up TLS: {exc}") from exc
        self._tls = _Tls(prints, context, anchor_set_for(tuple(anchors)))
        return self._tls

    async def start(self) -> None:
        """Check the TLS setup with the current anchors, then listen. Raises on failure."""
        config = await asyncio.to_thread(self._config)
        self._tls_for(config.anchors)
        s = self.settings
        try:
            self._server = await asyncio.start_server(self._accept, s.host, s.port)
        except OSError as exc:
            raise CallServiceSetupError(
                f"the call service cannot listen on {s.host}:{s.port}: {exc.strerror}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "call service listening: SIP over TLS on %s:%d as %s (%d organisations' edges)",
            s.host,
            self.port,
            s.public_host,
            len(config.edges),
        )

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def _refuse(self, peer: str, refusal: Refusal) -> None:
        log.warning(
            "call service: edge connection from %s refused: %s [reason %s]",
            peer,
            refusal.line,
            refusal.reason,
        )
        self.stats.refusals[refusal.reason] += 1
        metrics.record_refusal(refusal.reason)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        if self._open >= self.settings.max_connections:
            self._refuse(
                peer,
                Refusal(
                    TOO_MANY_CONNECTIONS,
                    f"{self._open} connections are open, the limit "
                    f"(max_connections {self.settings.max_connections}); closed at once",
                ),
            )
            writer.transport.abort()
            return
        self._open += 1
        self._writers.add(writer)
        try:
            await self._handle(reader, writer, peer)
        finally:
            self._open -= 1
            self._writers.discard(writer)
            writer.transport.abort()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        try:
            config = await asyncio.to_thread(self._config)
            tls = self._tls_for(config.anchors)
        except Exception as exc:  # a broken CA list must not take the listener down
            log.error("call service: cannot judge %s, configuration unusable: %s", peer, exc)
            return
        channel = _BioTls(tls.context, reader, writer)
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                await channel.handshake()
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self._refuse(peer, handshake_refusal(exc))
            return
        outcome = judge_edge(
            channel.ssl_object, config.edges, anchors=tls.anchors, role=PeerRole.CLIENT
        )
        if isinstance(outcome, Refusal):
            self._refuse(peer, outcome)
            return
        org = outcome.edge.org_name
        self.stats.admitted[org] += 1
        metrics.record_accepted()
        log.info(
            "call service: admitted edge %s of organisation %r (%s %s)",
            peer,
            org,
            outcome.verdict.source.value,
            outcome.verdict.identity,
        )
        await self._serve(channel, peer, org)

    async def _serve(self, channel: _BioTls, peer: str, org: str) -> None:
        s = self.settings
        stream = SipStream()
        started: float | None = None
        while True:
            if stream.buffered:
                started = started or time.monotonic()
                timeout = started + s.message_timeout - time.monotonic()
            else:
                started = None
                timeout = s.idle_timeout
            try:
                async with asyncio.timeout(timeout):
                    data = await channel.read()
            except TimeoutError:
                what = "message incomplete" if stream.buffered else "idle"
                log.warning("call service: edge %s (%r) closed: %s after %gs", peer, org, what,
                            s.message_timeout if stream.buffered else s.idle_timeout)  # fmt: skip
                return
            except (OSError, ssl.SSLError) as exc:
                log.info("call service: edge %s (%r) lost: %s", peer, org, exc)
                return
            try:
                stream.receive_data(data)
                while True:
                    event = stream.next_event()
                    if event is NEED_DATA:
                        break
                    if event is CLOSED:
                        log.info("call service: edge %s (%r) closed the connection", peer, org)
                        return
                    if isinstance(event, Ping):
                        await channel.write(PONG)
                    elif isinstance(event, Request):
                        answers = self.uas.on_request(event)
                        metrics.record_answers(event, answers)
                        await channel.write(b"".join(serialize(a) for a in answers))
                        log.info(
                            "call service: %s %s from edge %r (Call-ID %s)",
                            event.method,
                            event.uri,
                            org,
                            event.call_id,
                        )
                    # A response here would answer a request we never sent on this
                    # connection (test calls dial out on their own): it is dropped.
            except SipError as exc:
                log.warning(
                    "call service: edge %s (%r) closed: %s (SIP %d)",
                    peer,
                    org,
                    exc,
                    exc.status_hint,
                )
                return
            if not data:
                return
