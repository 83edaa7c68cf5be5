"""One TLS connection of the edge, and the asyncio plumbing under it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hybridge.edge.relay import Side
from hybridge.edge.zones import Zone


class Connection:
    """One admitted TLS connection."""

    __slots__ = ("conn_id", "dialled", "label", "outbox", "reader", "side", "writer", "zone")

    def __init__(
        self,
        conn_id: int,
        side: Side,
        zone: Zone,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        label: str,
    ) -> None:
        self.conn_id = conn_id
        self.side = side
        self.zone = zone
        self.reader = reader
        self.writer = writer
        self.label = label
        self.outbox: list[bytes] = []
        #: True when the edge opened it (the peer is then a TLS server).
        self.dialled = False

    def queue(self, data: bytes, batch: set[Connection]) -> None:
        """Queue ``data``; ``flush`` writes everything queued in ``batch`` at once."""
        self.outbox.append(data)
        batch.add(self)


async def flush(batch: set[Connection]) -> None:
    # One TLS write per target for all messages of one read: pipelined requests cost one
    # record and one send() each way instead of one per message.
    for conn in batch:
        if conn.outbox:
            conn.writer.write(b"".join(conn.outbox))
            conn.outbox.clear()
    for conn in batch:
        if not conn.writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
    batch.clear()


class UnreadProtocol(asyncio.Protocol):
    """A fresh TCP connection, not read from until our own TLS handshake takes it over.

    ``StreamWriter.start_tls`` on a stream server's connection can lose a ClientHello that
    the stream already buffered (seen here: a client that sends its ClientHello at once
    timed out); pausing reading in ``connection_made`` keeps every byte in the socket until
    ``loop.start_tls`` owns the transport. ``on_connection`` gets the paused transport.
    """

    def __init__(self, on_connection: Callable[[asyncio.Transport], None]) -> None:
        self._on_connection = on_connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        self._on_connection(transport)


class TlsStreamProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol under our own ``start_tls``: EOF closes (TLS has no half-close)."""

    def eof_received(self) -> bool:
        super().eof_received()
        return False


def peer_label(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
