"""The edge's own connections to the cloud: dialled when a request for the cloud side finds
no cloud connection up, judged by the same zone name rule as inbound ones.

Requests that arrive while the dial is under way wait behind the first, in order; when the
dial fails they are answered 503 (RFC 3261 §16.11: a stateless proxy may answer when it
has nowhere to relay).

Refused after our handshake. Under TLS 1.3 the client's handshake completes before the
server has judged the client certificate (RFC 8446 §4.4.2.4: the server checks it on
receiving our last flight), so a cloud that refuses the edge's certificate does so after the
edge has admitted the cloud and relayed the waiting requests: with an alert (OpenSSL's
verdict: ``unknown_ca``, ``certificate_expired``...) that is the first thing the edge reads,
or by closing without a word (a check after the handshake, like our call service's name
rule). Either way the cloud never saw the requests. Until the first byte of application data
arrives from the cloud, a dialled connection keeps the requests the dialer relayed on it; if
it ends first, the refusal is logged and counted like a dial-out refusal and each of those
requests is answered 503 with a ``Warning`` (RFC 3261 §20.43) saying why, instead of the
caller hearing nothing until its transaction times out. Requests the relay forwarded to the
connection directly in that moment (not through the dialer) are not tracked.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Protocol

from hybridge.core.sip import Frame, HeaderField, Request, SipError, parse_frame, serialize
from hybridge.edge.connection import Connection, ConnectionOwner
from hybridge.edge.identity import Refusal, handshake_refusal
from hybridge.edge.relay import Side
from hybridge.edge.settings import EdgeSettings
from hybridge.edge.zones import Zone
from hybridge.tls.refusal import REFUSED_BY_PEER

_READ_SIZE = 65_536
#: The refusal of a cloud that closed a dialled connection before answering anything.
CLOSED_UNANSWERED = Refusal(
    REFUSED_BY_PEER,
    "the peer closed the connection after the TLS handshake without answering: under TLS "
    "1.3 that is how a server refuses our certificate after its own check (its log says why)",
)


class DialledConnection(Connection):
    """A connection the edge opened to the cloud (the peer is the TLS server).

    ``done`` resolves True once the peer is admitted, False when the handshake or the
    judgement fails or the connection is lost first. ``unanswered`` holds the requests the
    dialer relayed on it until the cloud sends its first byte (``heard``); should the
    connection end before that, ``refusal`` says why and ``on_refused`` is called with it
    (module docstring).
    """

    __slots__ = ("_done", "_on_refused", "heard", "refusal", "refusal_logged", "unanswered")

    def __init__(
        self,
        owner: ConnectionOwner,
        context: ssl.SSLContext,
        *,
        settings: EdgeSettings,
        zone: Zone,
        done: asyncio.Future[bool],
        on_refused: Callable[[DialledConnection], None] | None = None,
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
        self._on_refused = on_refused
        #: True once application data arrived from the cloud: it admitted us.
        self.heard = False
        self.unanswered: list[tuple[Connection, Frame]] = []
        #: Why the cloud ended the connection before answering, once it has.
        self.refusal: Refusal | None = None
        self.refusal_logged = False

    def _resolve(self, admitted: bool) -> None:
        if not self._done.done():
            self._done.set_result(admitted)

    def _refused(self, refusal: Refusal) -> None:
        # Once per connection: an alert is followed by the close it announces.
        if not self.heard and self.admitted and self.refusal is None:
            self.refusal = refusal
            if self._on_refused is not None:
                self._on_refused(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshaking:
            self._refused(CLOSED_UNANSWERED)
        super().connection_lost(exc)
        self._resolve(False)

    def eof_received(self) -> bool:
        if not self.handshaking:
            self._refused(CLOSED_UNANSWERED)
        return super().eof_received()

    def _handshake(self) -> None:
        super()._handshake()
        if not self.handshaking:
            self._resolve(self.admitted)

    def _fail(self, exc: BaseException) -> None:
        super()._fail(exc)
        self._resolve(False)

    def _read(self) -> None:
        if self.heard or not self.admitted:
            super()._read()
            return
        # The first read after our handshake: the cloud's verdict on our certificate, an
        # alert, comes here under TLS 1.3 (module docstring), before any SIP.
        try:
            first = self.ssl_object.read(_READ_SIZE)
        except ssl.SSLWantReadError:
            super()._read()  # nothing yet (or a session ticket): send what OpenSSL wrote
            return
        except ssl.SSLZeroReturnError:
            first = b""  # close_notify before any answer
        except ssl.SSLError as exc:
            self._refused(handshake_refusal(exc))
            self._owner.data(self, b"")  # the session is dead: the owner closes it
            return
        if not first:
            self._refused(CLOSED_UNANSWERED)
            self._owner.data(self, b"")
            return
        self.heard = True
        self.unanswered.clear()
        self._owner.data(self, first)
        super()._read()  # the rest of what arrived


class DialOwner(ConnectionOwner, Protocol):
    """What the dialer needs from the server besides ``ConnectionOwner``."""

    def is_open(self, conn: Connection) -> bool:
        """True while ``conn`` is admitted and not closed."""

    def relay_to(self, target: Connection, data: bytes, source: Side) -> None:
        """Queue relayed ``data`` (from side ``source``) on ``target``."""

    def unroutable(self, conn: Connection, frame: Frame) -> None:
        """Answer the request in ``frame`` 503: nowhere to relay it."""

    def refuse_dial(self, target: str, refusal: Refusal) -> None:
        """Log and count a dial-out that failed (before TLS, or refused by the cloud)."""


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
            # Refused between its admission and now (before anything was relayed on it).
            refused = (
                target
                if isinstance(target, DialledConnection) and target.refusal is not None
                else None
            )
            for source, data, frame in waiting:
                if refused is not None:
                    refused.unanswered.append((source, frame))
                elif target is not None and self._owner.is_open(target):
                    self._owner.relay_to(target, data, source.side)
                    if isinstance(target, DialledConnection) and not target.heard:
                        target.unanswered.append((source, frame))
                else:
                    self._owner.unroutable(source, frame)
            if refused is not None:
                self._refused_after_handshake(refused)

    async def _dial(self, zone: Zone) -> Connection | None:
        assert zone.peer is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        conn = DialledConnection(
            self._owner,
            self._context(),
            settings=self._settings,
            zone=zone,
            done=done,
            on_refused=self._refused_after_handshake,
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

    def _refused_after_handshake(self, conn: DialledConnection) -> None:
        """The cloud refused ``conn`` after our handshake: log it once, answer what waited.

        An alert is always logged; a silent close only when requests were waiting (else it
        may be an idle connection the cloud let go).
        """
        refusal = conn.refusal
        assert refusal is not None
        waiting, conn.unanswered = conn.unanswered, []
        if not conn.refusal_logged and (waiting or refusal is not CLOSED_UNANSWERED):
            conn.refusal_logged = True
            self._owner.refuse_dial(str(conn.zone.peer if conn.zone else conn.label), refusal)
        agent = self._settings.advertise or self._settings.host
        # RFC 3261 §20.43: warn-text is a quoted-string; quotes and backslashes (a peer's
        # name may hold one) are escaped.
        text = refusal.line.replace("\\", "\\\\").replace('"', '\\"')
        warning = HeaderField("Warning", f'399 {agent} "cloud refused the edge: {text}"')
        for source, frame in waiting:
            try:
                message = parse_frame(frame)
            except SipError:
                continue
            if not isinstance(message, Request) or message.method == "ACK":
                continue  # RFC 3261 §17.1.1.3: an ACK is never answered
            # RFC 3261 §16.11: a stateless proxy may answer when it cannot forward; the
            # request never reached the cloud's SIP layer, so the caller may try again.
            answer = message.response(
                503, "Service Unavailable", to_tag="hb-edge", headers=(warning,)
            )
            if self._owner.is_open(source):
                # The owner's relay path: queued and flushed with this loop iteration's
                # writes (counted among the cloud side's forwarded messages).
                self._owner.relay_to(source, serialize(answer), Side.CLOUD)
