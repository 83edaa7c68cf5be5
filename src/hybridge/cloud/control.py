"""The cloud end of the control channel: ``/control`` and the hub that keeps it.

Authentication. The channel is a WebSocket on the cloud's own HTTPS server, authenticated
by the connector's client certificate from registration (mutual TLS). uvicorn 0.54 does
not implement the ASGI TLS extension (``scope["extensions"]["tls"]``; its WebSocket scope
carries only ``websocket.http.response``), so the certificate reaches the app the way the
cloud's ``/api`` already gets it: ``cloud.mtls.PeerCertH11Protocol`` copies the DER peer
certificate of the connection into the connection's ASGI ``state``, and uvicorn hands that
same state to the WebSocket protocol at the upgrade. A bearer token bound to the
certificate would add a second secret to steal and rotate for no gain: the certificate's
key never leaves the connector, and TLS proves possession on every handshake. The route
then re-checks the certificate (``mtls.authenticate_connector``: our connector CA,
clientAuth, the serial stored at registration, an *active* connector).

Refusals are WebSocket closes with a code from the private range (RFC 6455 §7.4.2,
4000-4999) and a reason a person can read; the connection is accepted first because an
ASGI close before accept becomes a bare HTTP 403 without a reason::

    4400  protocol error (malformed frame, first frame not hello)
    4401  no client certificate / not issued by our connector CA
    4403  unknown, deregistered or revoked connector
    4408  no hello / no heartbeat in time
    4409  replaced by a newer connection of the same connector

Pushes. When the CA list changes (any cloud process: the commit is seen by a SQLAlchemy
session hook, then announced through the broker; every hub also polls the database),
each hub signs the new version for each automatic-mode connector it holds (``aud`` = the
connector id) and pushes it; a connector whose hello reports an older sequence gets the
current version at once (catch-up). Acks, refusals and heartbeats are written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event
from starlette.websockets import WebSocketState

from hybridge.cloud import calist, control_store
from hybridge.cloud import control_metrics as metrics
from hybridge.cloud.control_broker import Broker, make_broker
from hybridge.cloud.control_signing import FanoutSigner
from hybridge.cloud.control_store import ChannelEvent, ChannelView
from hybridge.cloud.models import ca_list_version
from hybridge.cloud.mtls import ConnectorAuthError, authenticate_connector, peer_certificate
from hybridge.cloud.services import CloudServices
from hybridge.core.control import (
    Ack,
    Command,
    CommandFrame,
    ControlError,
    Heartbeat,
    Hello,
    Pong,
    Push,
    Refusal,
    Resync,
    Welcome,
    decode_connector_message,
    encode_message,
    sign_command,
)

log = logging.getLogger("hybridge.cloud.control")

CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409
#: RFC 6455 §5.5: a control frame's payload is at most 125 bytes; the close code takes 2.
MAX_REASON = 123


@dataclass(frozen=True)
class ControlSettings:
    """The hub's knobs; ``from_env`` reads them for ``hybridge cloud serve``.

    ``HYBRIDGE_CONTROL_REDIS_URL``   Redis for fan-out across cloud processes (unset: one)
    ``HYBRIDGE_CONTROL_HEARTBEAT``   heartbeat interval asked of connectors (s, default 30)
    ``HYBRIDGE_CONTROL_POLL``        database poll for missed notices (s, default 5)
    """

    redis_url: str | None = None
    heartbeat_interval: int = 30
    poll_interval: float = 5.0
    hello_timeout: float = 10.0
    batch_interval: float = 0.2
    node: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )

    def __post_init__(self) -> None:
        if not 1 <= self.heartbeat_interval <= 3600:
            raise ValueError(f"heartbeat interval {self.heartbeat_interval!r}; 1..3600 seconds")
        if not 0.05 <= self.poll_interval <= 3600:
            raise ValueError(f"poll interval {self.poll_interval!r}; 0.05..3600 seconds")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ControlSettings:
        """Settings from ``HYBRIDGE_CONTROL_*`` (see the class docstring).

        Raises:
            ValueError: a value is not a number in range.
        """
        env = dict(os.environ if environ is None else environ)
        return cls(
            redis_url=env.get("HYBRIDGE_CONTROL_REDIS_URL") or None,
            heartbeat_interval=int(env.get("HYBRIDGE_CONTROL_HEARTBEAT", "30")),
            poll_interval=float(env.get("HYBRIDGE_CONTROL_POLL", "5")),
        )

    @property
    def liveness_timeout(self) -> float:
        """Silence after which a connection is considered dead: three missed heartbeats."""
        return 3 * self.heartbeat_interval + 10


@dataclass
class _Channel:
    connector_id: str
    websocket: WebSocket
    trust_mode: str
    installed_seq: int | None
    last_frame: float
    pushed_seq: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, text: str) -> bool:
        async with self.lock:
            try:
                await self.websocket.send_text(text)
            except Exception:  # the connection is going away; its handler cleans up
                return False
        return True


class ControlHub:
    """The connected connectors of this cloud process, and what is pushed to them."""

    def __init__(self, services: CloudServices, settings: ControlSettings) -> None:
        self.services = services
        self.settings = settings
        self.channels: dict[str, _Channel] = {}
        self._broker: Broker = make_broker(settings.redis_url)
        self._events: list[ChannelEvent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: FanoutSigner | None = None
        self._fanout_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the broker and start the poll and the batch writer."""
        self._loop = asyncio.get_running_loop()
        await self._broker.start(self._on_notice)
        self._version = await self._read_version()
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name="control-poll"),
            asyncio.create_task(self._writer_loop(), name="control-writer"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._broker.close()
        await self._flush()
        with contextlib.suppress(Exception):
            await anyio.to_thread.run_sync(self._mark_offline)

    def _mark_offline(self) -> None:
        with self.services.database.transaction() as session:
            control_store.mark_node_offline(session, self.settings.node, self._now())

    def _now(self) -> dt.datetime:
        return self.services.settings.clock()

    # -- change notices ---------------------------------------------------------------

    def ca_list_committed(self) -> None:
        """Called (from any thread) after a transaction that published a CA-list version."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(
            lambda: loop.create_task(self._broker.publish({"type": "ca_list"}))
        )

    async def _on_notice(self, notice: dict[str, Any]) -> None:
        kind = notice.get("type")
        if kind == "ca_list":
            await self.check_ca_list()
        elif kind == "command":
            channel = self.channels.get(str(notice.get("connector_id")))
            token = notice.get("token")
            if channel is not None and isinstance(token, str):
                await channel.send(encode_message(CommandFrame(token)))

    async def _read_version(self) -> FanoutSigner | None:
        def read() -> FanoutSigner | None:
            with self.services.database.transaction() as session:
                version = calist.current_version(session)
                if version is None:
                    return None
                ders = tuple(ca.der for ca in calist.certificates(session, version.fingerprints))
            return FanoutSigner(
                self.services.keys.list_signing_key,
                issuer=self.services.settings.base_url,
                sequence=version.sequence,
                certificates=ders,
            )

        return await anyio.to_thread.run_sync(read)

    async def check_ca_list(self) -> None:
        """Re-read the current version; push it to every connector behind it."""
        async with self._fanout_lock:
            version = await self._read_version()
            if version is None:
                return
            if self._version is None or version.sequence > self._version.sequence:
                self._version = version
                log.info(
                    "control: CA list version %d, pushing to %d connectors",
                    version.sequence,
                    len(self.channels),
                )
            for channel in list(self.channels.values()):
                await self._push_if_behind(channel)
                # Let acks and heartbeats in while a large fan-out is signing.
                await asyncio.sleep(0)

    async def _push_if_behind(self, channel: _Channel) -> None:
        version = self._version
        # Manual mode: the connector's admin manages its anchors; no push (issue 5 §2).
        if version is None or channel.trust_mode != "auto":
            return
        installed = channel.installed_seq or 0
        if installed >= version.sequence or (channel.pushed_seq or 0) >= version.sequence:
            return
        now = self._now()
        # aud: a push for one connector cannot serve another.
        token = version.sign(channel.connector_id, int(now.timestamp()))
        channel.pushed_seq = version.sequence
        if await channel.send(encode_message(Push(token))):
            metrics.PUSHES_SENT.inc()
            self._record("push", channel.connector_id, now, seq=version.sequence)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval)
            try:
                await self.check_ca_list()
                await self._check_statuses()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control: poll failed")

    async def _check_statuses(self) -> None:
        """Close channels of connectors deregistered or revoked since they connected."""
        ids = list(self.channels)
        if not ids:
            return

        def read() -> dict[str, str]:
            with self.services.database.transaction() as session:
                return control_store.statuses(session, ids)

        found = await anyio.to_thread.run_sync(read)
        for connector_id in ids:
            status = found.get(connector_id, "unknown")
            channel = self.channels.get(connector_id)
            if status != "active" and channel is not None:
                if status in ("deregistered", "revoked"):
                    # The connector must stop trusting what the cloud pushed and drop the
                    # credential that no longer works: tell it, signed, then close.
                    with contextlib.suppress(Exception):
                        await self.send_command(connector_id, "deregister")
                await _close(channel.websocket, CLOSE_FORBIDDEN, f"connector is {status}")

    # -- commands ---------------------------------------------------------------------

    async def send_command(
        self, connector_id: str, name: str, args: dict[str, str] | None = None
    ) -> int:
        """Sign ``name`` for ``connector_id`` with the next command id and deliver it to
        whichever cloud process holds the connector. Returns the command id."""

        def reserve() -> int:
            with self.services.database.transaction() as session:
                return control_store.next_command_id(session, connector_id)

        command_id = await anyio.to_thread.run_sync(reserve)
        now = self._now()
        command = Command(
            self.services.settings.base_url,
            connector_id,
            command_id,
            name,
            int(now.timestamp()),
            args or {},
        )
        token = sign_command(command, self.services.keys.list_signing_key)
        channel = self.channels.get(connector_id)
        if channel is not None:
            await channel.send(encode_message(CommandFrame(token)))
        else:
            await self._broker.publish(
                {"type": "command", "connector_id": connector_id, "token": token}
            )
        return command_id

    # -- batched writes ---------------------------------------------------------------

    def _record(self, kind: str, connector_id: str, at: dt.datetime, **data: Any) -> None:
        self._events.append(ChannelEvent(kind, connector_id, at, data))

    async def _writer_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.batch_interval)
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control: writing channel events failed")

    async def _flush(self) -> None:
        if not self._events:
            return
        batch, self._events = self._events, []

        def write() -> None:
            with self.services.database.transaction() as session:
                control_store.write_events(session, batch, self.settings.node)

        await anyio.to_thread.run_sync(write)

    # -- one connection ---------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """Run one connector's channel until it closes."""
        await websocket.accept()
        cert = peer_certificate(websocket.state)
        now = self._now()

        def authenticate() -> control_store.ConnectorFacts | None:
            with self.services.database.transaction() as session:
                connector_id = authenticate_connector(session, cert, self.services.keys, now)
                return control_store.connector_facts(session, connector_id)

        try:
            facts = await anyio.to_thread.run_sync(authenticate)
        except ConnectorAuthError as exc:
            # mtls names a refused *connector* as "connector '<id>' is <status>"; anything
            # else is a certificate that does not authenticate at all.
            code = CLOSE_FORBIDDEN if str(exc).startswith("connector ") else CLOSE_UNAUTHENTICATED
            metrics.REFUSED_CONNECTIONS.labels(str(code)).inc()
            log.info("control: connection refused (%d): %s", code, exc)
            await _close(websocket, code, str(exc))
            return
        assert facts is not None  # authenticate_connector found the row
        try:
            first = await asyncio.wait_for(_receive(websocket), self.settings.hello_timeout)
        except TimeoutError:
            await _close(websocket, CLOSE_TIMEOUT, "no hello in time")
            return
        if first is None:
            return
        if not isinstance(first, Hello):
            await _close(websocket, CLOSE_PROTOCOL, "the first frame must be a hello")
            return
        await self._run_channel(websocket, facts, first)

    async def _run_channel(
        self, websocket: WebSocket, facts: control_store.ConnectorFacts, hello: Hello
    ) -> None:
        connector_id = facts.connector_id
        channel = _Channel(
            connector_id, websocket, facts.trust_mode, hello.installed_seq, time.monotonic()
        )
        previous = self.channels.get(connector_id)
        self.channels[connector_id] = channel
        metrics.CONNECTED.set(len(self.channels))
        if previous is not None:
            await _close(previous.websocket, CLOSE_REPLACED, "replaced by a newer connection")
        now = self._now()
        self._record(
            "online",
            connector_id,
            now,
            version=hello.version,
            status=hello.status,
            alarms=hello.alarms,
            installed_seq=hello.installed_seq,
        )
        version = self._version
        welcome = Welcome(
            self.settings.heartbeat_interval,
            version.sequence if version else None,
            connector_id,
        )
        await channel.send(encode_message(welcome))
        await self._push_if_behind(channel)  # catch-up after a time offline
        try:
            await self._receive_loop(channel)
        finally:
            if self.channels.get(connector_id) is channel:
                del self.channels[connector_id]
                self._record("offline", connector_id, self._now())
            metrics.CONNECTED.set(len(self.channels))

    async def _receive_loop(self, channel: _Channel) -> None:
        websocket = channel.websocket
        while True:
            try:
                message = await asyncio.wait_for(
                    _receive(websocket), self.settings.liveness_timeout
                )
            except TimeoutError:
                await _close(websocket, CLOSE_TIMEOUT, "no heartbeat in time")
                return
            except ControlError as exc:
                await _close(websocket, CLOSE_PROTOCOL, f"{exc.reason}: {exc}")
                return
            if message is None:
                return
            arrived = time.monotonic()
            now = self._now()
            if isinstance(message, Heartbeat):
                late = arrived - channel.last_frame - self.settings.heartbeat_interval
                metrics.HEARTBEAT_LAG.observe(max(0.0, late))
                channel.installed_seq = message.installed_seq
                self._record(
                    "heartbeat",
                    channel.connector_id,
                    now,
                    version=message.version,
                    status=message.status,
                    alarms=message.alarms,
                    installed_seq=message.installed_seq,
                )
            elif isinstance(message, Ack) and message.seq is not None:
                channel.installed_seq = message.seq
                metrics.PUSHES_APPLIED.inc()
                self._record("ack", channel.connector_id, now, seq=message.seq)
            elif isinstance(message, Refusal):
                if message.of == "push":
                    metrics.PUSHES_REFUSED.labels(message.reason).inc()
                log.warning(
                    "control: connector %s refused a %s: %s: %s",
                    channel.connector_id,
                    message.of,
                    message.reason,
                    message.detail,
                )
                self._record(
                    "refusal",
                    channel.connector_id,
                    now,
                    of=message.of,
                    reason=message.reason,
                    detail=message.detail,
                    seq=message.seq,
                    command_id=message.command_id,
                )
            elif isinstance(message, Resync):
                channel.installed_seq = message.installed_seq
                channel.pushed_seq = None
                await self._push_if_behind(channel)
            elif isinstance(message, Hello):
                await _close(websocket, CLOSE_PROTOCOL, "hello sent twice")
                return
            # Ack of a command and Pong: liveness only (the frame time below).
            elif not isinstance(message, Ack | Pong):  # pragma: no cover - exhaustive
                await _close(websocket, CLOSE_PROTOCOL, "unexpected frame")
                return
            channel.last_frame = arrived

    def view(self, connector_id: str) -> ChannelView:
        """The portal's view of ``connector_id`` (from the database: any node may hold it)."""
        stale = dt.timedelta(seconds=self.settings.liveness_timeout)
        with self.services.database.transaction() as session:
            return control_store.channel_view(session, connector_id, self._now(), stale)

    def current_sequence(self) -> int | None:
        with self.services.database.transaction() as session:
            return control_store.current_sequence(session)


async def _receive(websocket: WebSocket) -> Any:
    """The next connector frame, or ``None`` when the peer closed.

    Raises:
        ControlError: the frame is too large or not one of ours.
    """
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    return decode_connector_message(text if text is not None else message.get("bytes") or b"")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    encoded = reason.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=encoded)


def _watch_ca_list(services: CloudServices, on_commit: Callable[[], None]) -> None:
    """Call ``on_commit`` after every committed transaction that published a CA-list version.

    The cloud's CA-list code (``calist``) stays unaware of the channel: a session hook sees
    the INSERT into ``ca_list_version`` and, once that transaction commits (never on
    rollback), announces it.
    """
    sessions = services.database.sessions
    flag = "hybridge.ca_list_changed"

    @event.listens_for(sessions, "do_orm_execute")
    def _seen(state: Any) -> None:
        statement = state.statement
        if state.is_insert and getattr(statement, "table", None) is ca_list_version:
            state.session.info[flag] = True

    @event.listens_for(sessions, "after_commit")
    def _committed(session: Any) -> None:
        if session.info.pop(flag, False):
            on_commit()

    @event.listens_for(sessions, "after_rollback")
    def _rolled_back(session: Any) -> None:
        session.info.pop(flag, None)


def control_router(hub: ControlHub) -> APIRouter:
    router = APIRouter()

    @router.websocket("/control")
    async def control(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # Counts only: no connector id, no secret (see control_metrics).
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_control(
    app: FastAPI, services: CloudServices, settings: ControlSettings | None = None
) -> ControlHub:
    """Add ``/control`` and ``/metrics`` to the cloud app and run the hub with the app.

    The hub starts and stops with the app's lifespan (wrapping whatever lifespan the app
    already has); the portal reads channel state through the ``control_view`` template
    global.

    Raises:
        ValueError: a ``HYBRIDGE_CONTROL_*`` setting is out of range.
    """
    hub = ControlHub(services, settings or ControlSettings.from_env())
    app.state.control = hub
    app.include_router(control_router(hub))
    _watch_ca_list(services, hub.ca_list_committed)
    services.templates.env.globals["control_view"] = hub.view
    services.templates.env.globals["control_current_sequence"] = hub.current_sequence
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        await hub.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await hub.stop()

    app.router.lifespan_context = lifespan
    return hub
