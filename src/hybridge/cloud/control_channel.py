"""One connector's channel on the cloud: authenticate, hello, then frames until it closes.

The WebSocket protocol of ``/control`` (see ``cloud.control`` for why the certificate comes
through ``cloud.mtls`` and what each close code means), as a mixin of ``ControlHub``: it
uses the hub's connected set, its batched writer and its push.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from hybridge.cloud import control_metrics as metrics
from hybridge.cloud import control_store
from hybridge.cloud.control_settings import ControlSettings
from hybridge.cloud.mtls import (
    ConnectorAuthError,
    authenticate_connector,
    peer_certificate_from_der,
    peer_der,
)
from hybridge.cloud.services import CloudServices
from hybridge.core.control import (
    Ack,
    ControlError,
    Heartbeat,
    Hello,
    Pong,
    Refusal,
    Resync,
    Welcome,
    decode_connector_message,
    encode_message,
)

log = logging.getLogger("hybridge.cloud.control")

CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409
#: RFC 6455 §5.5: a control frame's payload is at most 125 bytes; the close code takes 2.
MAX_REASON = 123


@dataclass
class Channel:
    """One connected connector: its socket, mode, sequence and what was last pushed."""

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


class ChannelProtocol:
    """``/control`` for one connection (mixed into ``ControlHub``)."""

    services: CloudServices
    settings: ControlSettings
    channels: dict[str, Channel]
    _version: Any

    def _now(self) -> dt.datetime:
        raise NotImplementedError

    def _record(self, kind: str, connector_id: str, at: dt.datetime, **data: Any) -> None:
        raise NotImplementedError

    async def _push_if_behind(self, channel: Channel) -> None:
        raise NotImplementedError

    # -- one connection ---------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        """Run one connector's channel until it closes.

        Memory: this coroutine lives as long as the connection, so everything that is only
        needed to open the channel (the certificate, the hello, the database row) lives in
        ``_open``'s frame and is gone once the channel runs; a channel holds its socket and
        a few scalars (see bench/push_fanout.py for what one connection costs).
        """
        channel = await self._open(websocket)
        if channel is None:
            return
        try:
            await self._receive_loop(channel)
        finally:
            connector_id = channel.connector_id
            if self.channels.get(connector_id) is channel:
                del self.channels[connector_id]
                self._record("offline", connector_id, self._now())
            metrics.CONNECTED.set(len(self.channels))

    async def _open(self, websocket: WebSocket) -> Channel | None:
        """Accept, authenticate, read the hello, register and welcome; ``None`` if refused."""
        await websocket.accept()
        now = self._now()
        der = peer_der(websocket.state)

        def authenticate() -> control_store.ConnectorFacts | None:
            cert = peer_certificate_from_der(der)
            with self.services.database.transaction() as session:
                connector_id = authenticate_connector(session, cert, self.services.keys, now)
                return control_store.connector_facts(session, connector_id)

        try:
            # asyncio's thread helper, not anyio's: uvicorn may cancel this task at shutdown
            # and anyio's shielded wait could swallow that cancellation.
            facts = await asyncio.to_thread(authenticate)
        except ConnectorAuthError as exc:
            # mtls names a refused *connector* as "connector '<id>' is <status>"; anything
            # else is a certificate that does not authenticate at all.
            code = CLOSE_FORBIDDEN if str(exc).startswith("connector ") else CLOSE_UNAUTHENTICATED
            metrics.REFUSED_CONNECTIONS.labels(str(code)).inc()
            log.info("control: connection refused (%d): %s", code, exc)
            await close_websocket(websocket, code, str(exc))
            return None
        assert facts is not None  # authenticate_connector found the row
        try:
            hello = await asyncio.wait_for(_receive(websocket), self.settings.hello_timeout)
        except TimeoutError:
            await close_websocket(websocket, CLOSE_TIMEOUT, "no hello in time")
            return None
        except ControlError as exc:
            await close_websocket(websocket, CLOSE_PROTOCOL, f"{exc.reason}: {exc}")
            return None
        if hello is None:
            return None
        if not isinstance(hello, Hello):
            await close_websocket(websocket, CLOSE_PROTOCOL, "the first frame must be a hello")
            return None
        connector_id = facts.connector_id
        channel = Channel(
            connector_id, websocket, facts.trust_mode, hello.installed_seq, time.monotonic()
        )
        previous = self.channels.get(connector_id)
        self.channels[connector_id] = channel
        metrics.CONNECTED.set(len(self.channels))
        if previous is not None:
            await close_websocket(
                previous.websocket, CLOSE_REPLACED, "replaced by a newer connection"
            )
        self._record(
            "online",
            connector_id,
            self._now(),
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
        return channel

    async def _receive_loop(self, channel: Channel) -> None:
        # No timeout per receive (a timer and a future per connection): the hub's liveness
        # sweep closes channels silent for ``liveness_timeout`` (``close_silent``).
        websocket = channel.websocket
        while True:
            try:
                message = await _receive(websocket)
            except ControlError as exc:
                await close_websocket(websocket, CLOSE_PROTOCOL, f"{exc.reason}: {exc}")
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
                await close_websocket(websocket, CLOSE_PROTOCOL, "hello sent twice")
                return
            # Ack of a command and Pong: liveness only (the frame time below).
            elif not isinstance(message, Ack | Pong):  # pragma: no cover - exhaustive
                await close_websocket(websocket, CLOSE_PROTOCOL, "unexpected frame")
                return
            channel.last_frame = arrived

    async def close_silent(self) -> int:
        """Close every channel silent for ``liveness_timeout``; returns how many."""
        horizon = time.monotonic() - self.settings.liveness_timeout
        silent = [c for c in self.channels.values() if c.last_frame < horizon]
        for channel in silent:
            await close_websocket(channel.websocket, CLOSE_TIMEOUT, "no heartbeat in time")
        return len(silent)


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


async def close_websocket(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    encoded = reason.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=encoded)
