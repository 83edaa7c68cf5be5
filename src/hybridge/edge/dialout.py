"""The edge's own connections to the cloud: dialled when a request for the cloud side finds
no cloud connection up, judged by the same zone name rule as inbound ones.

Requests that arrive while the dial is under way wait behind the first, in order; when the
dial fails they are answered 503 (RFC 3261 §16.11: a stateless proxy may answer when it
has nowhere to relay).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Protocol

from hybridge.core.sip import Frame
from hybridge.edge.connection import Connection, ConnectionOwner
from hybridge.edge.identity import Refusal, handshake_refusal
from hybridge.edge.relay import Side
from hybridge.edge.settings import EdgeSettings
from hybridge.edge.zones import Zone


class DialledConnection(Connection):
    """A connection the edge opened to the cloud (the peer is the TLS server).

    ``done`` resolves True once the peer is admitted, False when the handshake or the
    judgement fails or the connection is lost first.
    """

    __slots__ = ("_done",)

    def __init__(
        self,
        owner: ConnectionOwner,
        context: ssl.SSLContext,
        *,
        settings: EdgeSettings,
        zone: Zone,
        done: asyncio.Future[bool],
    ) -> None:
        super().__init__(
            owner,
            Side.CLOUD,
            context,
            handshake_timeout=settings.handshake_timeout,
            max_message_size=settings.max_message_size,
            server_hostname=zone.subject_name,
        )
        self.zone = zone
        self._done = done

    def _resolve(self, admitted: bool) -> None:
        if not self._done.done():
            self._done.set_result(admitted)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._resolve(False)

    def _handshake(self) -> None:
        super()._handshake()
        if not self.handshaking:
            self._resolve(self.admitted)

    def _fail(self, exc: BaseException) -> None:
        super()._fail(exc)
        self._resolve(False)


class DialOwner(ConnectionOwner, Protocol):
    """What the dialer needs from the server besides ``ConnectionOwner``."""

    def is_open(self, conn: Connection) -> bool:
        """True while ``conn`` is admitted and not closed."""

    def relay_to(self, target: Connection, data: bytes, source: Side) -> None:
        """Queue relayed ``data`` (from side ``source``) on ``target``."""

    def unroutable(self, conn: Connection, frame: Frame) -> None:
        """Answer the request in ``frame`` 503: nowhere to relay it."""

    def refuse_dial(self, target: str, refusal: Refusal) -> None:
        """Log and count a dial-out that failed before TLS."""


class CloudDialer:
    """Dials the cloud zones' peers, one attempt at a time, and holds what waits for it."""

    def __init__(
        self,
        owner: DialOwner,
        settings: EdgeSettings,
        context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._owner = owner
        self._settings = settings
        self._context = context
        self._waiting: list[tuple[Connection, bytes, Frame]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dialling(self) -> bool:
        """True while a dial-out is under way."""
        return self._waiting is not None

    def send(self, zones: tuple[Zone, ...], source: Connection, data: bytes, frame: Frame) -> None:
        """Send ``data`` (the relayed request in ``frame``) once a cloud connection is up."""
        if self._waiting is None:
            self._waiting = []
            task = asyncio.get_running_loop().create_task(self._dial_any(zones))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._waiting.append((source, data, frame))

    def cancel(self) -> None:
        """Stop a dial under way (the server is closing)."""
        for task in list(self._tasks):
            task.cancel()

    async def _dial_any(self, zones: tuple[Zone, ...]) -> None:
        target: Connection | None = None
        try:
            for zone in zones:
                if zone.peer is None:
                    continue
                target = await self._dial(zone)
                if target is not None:
                    break
        finally:
            waiting, self._waiting = self._waiting or [], None
            for source, data, frame in waiting:
                if target is not None and self._owner.is_open(target):
                    self._owner.relay_to(target, data, source.side)
                else:
                    self._owner.unroutable(source, frame)

    async def _dial(self, zone: Zone) -> Connection | None:
        assert zone.peer is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        conn = DialledConnection(
            self._owner, self._context(), settings=self._settings, zone=zone, done=done
        )
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, zone.peer.host, zone.peer.port),
                self._settings.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._owner.refuse_dial(str(zone.peer), handshake_refusal(exc))
            return None
        # The handshake has its own deadline (handshake_timeout): ``done`` always resolves.
        admitted = await done
        return conn if admitted else None
