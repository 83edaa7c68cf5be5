"""One TLS connection of the edge: an asyncio ``Protocol`` on a TCP transport, with our own
``ssl.SSLObject`` over memory BIOs.

Why not ``loop.create_server(ssl=...)``, ``loop.start_tls`` or streams:

- with ``ssl=`` the loop does the handshake and keeps its failures to itself (uvloop and
  asyncio log them at debug level and never call the protocol), so a refused peer would go
  unlogged and uncounted; the edge must say why every connection was refused;
- ``start_tls`` needs the TCP transport paused until TLS takes it over, and uvloop starts
  reading after ``connection_made`` whatever the protocol did, so a ClientHello that arrives
  early is lost (seen here: every uvloop handshake timed out);
- streams cost a task, a ``StreamReader`` buffer and an ``await`` per read, and a ``drain``
  per write; the relay is stateless and needs none of them.

So the handshake, its deadline and its failure are ours (``ConnectionOwner``), and on the
hot path one ``data_received`` decrypts every complete TLS record it was handed, gives the
plaintext to the owner in one call, and the owner's forwards to a connection are queued and
written as one TLS write per loop iteration (``queue``/``flush``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Protocol

from hybridge.core.sip import LazyHead, SipStream
from hybridge.edge.relay import Side
from hybridge.edge.zones import Zone

_READ_SIZE = 65_536
# A peer that does not read: past this many bytes queued for it, its connection is closed
# (Kamailio's tcp_conn_wq_max does the same, default 32 KiB with async writes; a relay's
# backlog to one peer beyond 1 MiB is a peer that is gone or hostile).
MAX_WRITE_BACKLOG = 1 << 20
_INFINITY = float("inf")


class ConnectionOwner(Protocol):
    """What a ``Connection`` reports to the server that owns it."""

    def admit_tcp(self, conn: Connection) -> bool:
        """A peer opened a TCP connection; False refuses it (counted and logged)."""

    def handshake_done(self, conn: Connection) -> None:
        """The TLS handshake succeeded; judge the peer."""

    def handshake_failed(self, conn: Connection, exc: BaseException) -> None:
        """The TLS handshake failed or timed out (``TimeoutError``); the transport is closed."""

    def data(self, conn: Connection, data: bytes) -> None:
        """Plaintext from the peer, in order; ``b""`` when the peer closed the stream."""

    def lost(self, conn: Connection) -> None:
        """The TCP connection is gone."""

    def expired(self, conn: Connection) -> None:
        """The deadline set with ``Connection.arm`` has passed."""


class Connection(asyncio.Protocol):
    """One TLS connection: its TLS state, its SIP stream and what the server knows of it.

    ``zone`` and ``conn_id`` are set by the owner once the peer is admitted; until then
    ``admitted`` is False and nothing but the handshake happens.
    """

    __slots__ = (
        "_handshake_timeout",
        "_handshake_timer",
        "_incoming",
        "_outgoing",
        "_owner",
        "admitted",
        "conn_id",
        "deadline",
        "dialled",
        "handshaking",
        "inbound",
        "label",
        "message_started",
        "outbox",
        "side",
        "ssl_object",
        "stream",
        "timer",
        "timer_at",
        "transport",
        "zone",
    )

    def __init__(
        self,
        owner: ConnectionOwner,
        side: Side,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        max_message_size: int,
        server_hostname: str | None = None,
        head_scanner: Callable[[bytes], LazyHead | None] | None = None,
    ) -> None:
        self._owner = owner
        self.side = side
        self.inbound = server_hostname is None
        #: True when the edge opened it (the peer is then a TLS server).
        self.dialled = not self.inbound
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=self.inbound,
            server_hostname=server_hostname,
        )
        self._handshake_timeout = handshake_timeout
        self._handshake_timer: asyncio.TimerHandle | None = None
        self.handshaking = True
        self.admitted = False
        self.transport: asyncio.Transport | None = None
        self.label = "?"
        self.conn_id = 0
        self.zone: Zone | None = None
        self.stream = SipStream(max_message_size=max_message_size, head_scanner=head_scanner)
        self.outbox: list[bytes] = []
        self.message_started: float | None = None
        self.deadline = _INFINITY
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = _INFINITY

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        self.label = peer_label(transport)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self._handshake_expired)
        if not self.inbound:
            self._handshake()  # the ClientHello

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if self.handshaking:
            self._handshake()
            if self.handshaking or not self.admitted:
                return
        self._read()

    def eof_received(self) -> bool:
        # TLS has no half-close: EOF ends the connection.
        if self.handshaking:
            self._fail(ConnectionResetError("the peer closed the connection during the handshake"))
        elif self.admitted:
            self._owner.data(self, b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self.handshaking:
            self.handshaking = False
            self._owner.handshake_failed(
                self, exc or ConnectionResetError("connection lost during the handshake")
            )
        self._owner.lost(self)

    # -- TLS ------------------------------------------------------------------------------

    def _send_pending(self) -> None:
        if self._outgoing.pending and self.transport is not None:
            self.transport.write(self._outgoing.read())

    def _handshake(self) -> None:
        try:
            self.ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            self._send_pending()
            return
        except (ssl.SSLError, OSError) as exc:
            self._send_pending()  # our alert, when OpenSSL wrote one
            self._fail(exc)
            return
        self._send_pending()
        self.handshaking = False
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self._owner.handshake_done(self)
        if self.admitted and (self._incoming.pending or self.ssl_object.pending()):
            self._read()  # application data that came with the last handshake flight

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if self.handshaking:
            self._fail(TimeoutError("TLS handshake not completed in time"))

    def _fail(self, exc: BaseException) -> None:
        if not self.handshaking:
            return
        self.handshaking = False
        self._cancel_timers()
        self._owner.handshake_failed(self, exc)
        if self.transport is not None:
            self.transport.close()

    def _read(self) -> None:
        read = self.ssl_object.read
        incoming = self._incoming
        chunks: list[bytes] = []
        closed = False
        while incoming.pending or self.ssl_object.pending():
            try:
                chunk = read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                closed = True  # close_notify
                break
            except ssl.SSLError:
                closed = True  # a corrupt record: nothing more can be read
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        self._send_pending()  # post-handshake messages (key updates) OpenSSL answered
        if chunks:
            self._owner.data(self, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if closed and self.admitted:
            self._owner.data(self, b"")

    # -- deadlines ------------------------------------------------------------------------

    def arm(self, now: float, *, header_timeout: float, idle_timeout: float | None) -> None:
        """Set the deadline after a read at loop time ``now``.

        With an incomplete message buffered: ``header_timeout`` after its first byte arrived
        (``message_started``); else ``idle_timeout`` from now, or none. When it passes, the
        owner's ``expired`` is called. One timer per connection, moved lazily: a read only
        writes ``deadline``; the timer, when it fires early, re-arms for the deadline then.
        """
        if self.stream.buffered:
            if self.message_started is None:
                self.message_started = now
            deadline = self.message_started + header_timeout
        else:
            self.message_started = None
            deadline = _INFINITY if idle_timeout is None else now + idle_timeout
        self.deadline = deadline
        if deadline < self.timer_at or (self.timer is None and deadline != _INFINITY):
            if self.timer is not None:
                self.timer.cancel()
            self.timer = asyncio.get_running_loop().call_at(deadline, self._deadline_passed)
            self.timer_at = deadline

    def _deadline_passed(self) -> None:
        self.timer = None
        self.timer_at = _INFINITY
        if not self.admitted or self.deadline == _INFINITY:
            return
        loop = asyncio.get_running_loop()
        if loop.time() + 0.001 < self.deadline:
            self.timer = loop.call_at(self.deadline, self._deadline_passed)
            self.timer_at = self.deadline
            return
        self._owner.expired(self)

    # -- writing --------------------------------------------------------------------------

    def queue(self, data: bytes) -> bool:
        """Queue ``data``; return True when the outbox was empty (flush it this round)."""
        self.outbox.append(data)
        return len(self.outbox) == 1

    def flush(self) -> bool:
        """Encrypt and send everything queued, as one TLS write.

        Returns False when the peer does not read (over ``MAX_WRITE_BACKLOG`` queued in the
        transport): the caller closes the connection.
        """
        outbox = self.outbox
        transport = self.transport
        if not outbox or transport is None or transport.is_closing():
            outbox.clear()
            return True
        data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
        outbox.clear()
        try:
            self.ssl_object.write(data)
        except ssl.SSLError:
            return True  # the TLS session is shut: the transport is closing
        transport.write(self._outgoing.read())
        return transport.get_write_buffer_size() <= MAX_WRITE_BACKLOG

    def close(self) -> None:
        """Close the connection now (no close_notify: the relay's peers do not need one)."""
        self._cancel_timers()
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timers(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class InboundConnection(Connection):
    """A connection a peer opened to one of our listeners."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._owner.admit_tcp(self):
            self.inbound = False  # not counted: nothing to give back in lost()
            self.handshaking = False
            self.close()


def peer_label(transport: asyncio.BaseTransport) -> str:
    """``host:port`` of the peer, for log lines."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
