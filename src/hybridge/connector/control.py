"""The connector end of the control channel: one outbound WebSocket over TLS to the cloud.

Trust. DESIGN.md §3 invariant 1: the channel is verified by the trust store's PLATFORM
anchors (manual + cloud), never by the bootstrap set, read afresh for every connection, so
a push that changed the anchors takes effect on the next connection without a restart.
The context comes from ``hybridge.tls.client_context`` (OpenSSL validates the path and the
key possession during the handshake; the client certificate from registration is loaded
into it), and ``hybridge.tls.check_peer`` runs our own path validation and name rule on the
live connection *before the WebSocket handshake is sent*: ``_CheckedConnection`` does it in
``connection_made`` (called once TLS is up, before any byte of HTTP is written) and aborts
the transport on refusal. This follows the duty stated in ``hybridge.tls``.

Reconnects use ``core.control.Backoff`` (capped exponential, full jitter) so that a fleet
cut off by a cloud restart comes back spread over time; they never give up. While the cloud
is unreachable the trust store keeps its last good set, and after ``alarm_after`` seconds
the channel raises an alarm (log, metrics, dashboard, and the next hello carries it).

``websockets`` (asyncio client) does the RFC 6455 work. Compression is off: a deflate
context per connection costs the cloud tens of KiB of memory per connector, and pushes are
small and rare.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hybridge import __version__
from hybridge.connector import control_metrics as metrics
from hybridge.connector.control_apply import (
    CommandLedger,
    apply_push,
    check_command,
    deregister_locally,
)
from hybridge.connector.control_link import (
    ChannelError,
    ChannelSettings,
    ChannelStatus,
    checked_connection,
    tls_context,
)
from hybridge.connector.control_views import control_router
from hybridge.connector.credentials import CredentialStore, Registration
from hybridge.core.control import (
    MAX_CLOUD_FRAME,
    Ack,
    CommandFrame,
    ControlError,
    Heartbeat,
    Hello,
    Pong,
    Push,
    Refusal,
    Resync,
    Welcome,
    decode_cloud_message,
    encode_message,
)
from hybridge.core.control_commands import (
    Command,
)
from hybridge.core.tlsverify import Refused
from hybridge.storage.db import Database
from hybridge.tls.errors import TlsError
from hybridge.truststore import TrustStore, TrustStoreError, TrustUse

__all__ = ["ChannelError", "ChannelSettings", "ChannelStatus", "ControlClient", "install_control"]

log = structlog.get_logger(__name__)


class ControlClient:
    """Keeps the channel open while the connector is registered; applies what it gets."""

    def __init__(
        self,
        *,
        store: TrustStore,
        database: Database,
        credentials: CredentialStore,
        data_dir: Path,
        clock: Callable[[], datetime],
        settings: ChannelSettings | None = None,
        version: str = __version__,
    ) -> None:
        self.store = store
        self.database = database
        self.credentials = credentials
        self.clock = clock
        self.settings = settings or ChannelSettings()
        self.version = version
        self.ledger = CommandLedger(data_dir)
        self.status = ChannelStatus(heartbeat_interval=self.settings.heartbeat_interval)
        self._attempt = 0
        self._alarmed = False
        #: Handlers of further commands by name (the calendar service's, ...): called in a
        #: worker thread after the command verified, answered with an Ack.
        self.command_handlers: dict[str, Callable[[Command], None]] = {}

    def reconfigure(self, settings: ChannelSettings) -> None:
        """Use ``settings`` instead of those given at construction (``connector serve``'s
        flags); call before the channel runs."""
        self.settings = settings
        self.status.heartbeat_interval = settings.heartbeat_interval

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: connect, serve, back off, reconnect.

        Blocking work goes through ``asyncio.to_thread``, not anyio's: this task is
        cancelled with ``Task.cancel()``, and anyio's shielded thread wait could swallow
        that cancellation, leaving the loop running after shutdown.
        """
        while True:
            registration = await asyncio.to_thread(self.credentials.current)
            if registration is None:
                self.status.set("not_registered")
                self._attempt = 0
                self.status.unreachable_since = None
                self._update_alarms()
                await asyncio.sleep(self.settings.registration_poll)
                continue
            try:
                await self._session(registration)
                self.status.last_error = None
            except asyncio.CancelledError:
                raise
            except (ChannelError, TrustStoreError, TlsError, ControlError, OSError) as exc:
                self.status.last_error = str(exc)
                log.info("connector.control_disconnected", error=str(exc))
            except Exception as exc:  # never let the channel die: log and reconnect
                self.status.last_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("connector.control_failed")
            metrics.CONNECTED.set(0)
            if self.status.state == "not_registered":
                continue
            self.status.set("offline")
            if self.status.unreachable_since is None:
                self.status.unreachable_since = time.time()
            self._update_alarms()
            delay = self.settings.backoff.delay(self._attempt, random.random())  # noqa: S311 - jitter, not a secret
            self._attempt += 1
            self.status.attempt = self._attempt
            self.status.next_attempt_at = time.time() + delay
            metrics.RECONNECTS.inc()
            await asyncio.sleep(delay)
            self._update_alarms()

    def _update_alarms(self) -> None:
        since = self.status.unreachable_since
        alarms = [a for a in self.status.alarms if not a.startswith("cloud unreachable")]
        unreachable = since is not None and time.time() - since >= self.settings.alarm_after
        if unreachable:
            assert since is not None
            alarms.append(f"cloud unreachable for {int(time.time() - since)}s")
            if not self._alarmed:
                log.warning(
                    "connector.control_alarm_cloud_unreachable",
                    seconds=int(time.time() - since),
                    error=self.status.last_error,
                )
        self._alarmed = unreachable
        metrics.ALARM.set(1 if unreachable else 0)
        self.status.alarms = alarms

    # -- one connection ---------------------------------------------------------------

    async def _open(self, registration: Registration) -> tuple[Any, list[Refused]]:
        parts = urlsplit(registration.control_url)
        if parts.scheme != "wss" or not parts.hostname:
            raise ChannelError(f"control URL {registration.control_url!r} is not a wss:// URL")
        # DESIGN.md §3 invariant 1: the platform set, never the bootstrap anchors.
        anchors = self.store.anchors_for(TrustUse.PLATFORM)
        secret = await asyncio.to_thread(self.credentials.key_for, registration)
        context = tls_context(
            anchors, registration.client_certificate_pem.encode(), secret.reveal()
        )
        refusals: list[Refused] = []
        opener = connect(
            registration.control_url,
            ssl=context,
            server_hostname=parts.hostname,
            create_connection=checked_connection(parts.hostname, anchors, refusals),
            open_timeout=self.settings.open_timeout,
            max_size=MAX_CLOUD_FRAME,
            compression=None,
            user_agent_header=f"hybridge-connector/{self.version}",
        )
        return opener, refusals

    async def _session(self, registration: Registration) -> None:
        opener, refusals = await self._open(registration)
        if self.status.state != "offline":  # an outage shows as offline until it ends
            self.status.set("connecting")
        try:
            async with opener as websocket:
                await self._converse(websocket, registration)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            raise ChannelError(f"the cloud closed the channel ({code}): {reason}") from exc
        except (InvalidHandshake, InvalidURI, TimeoutError, OSError) as exc:
            if refusals:
                refused = refusals[0]
                raise ChannelError(
                    "the cloud's certificate was refused: "
                    f"{refused.reason.value}: {refused.explanation}"
                ) from exc
            raise ChannelError(f"cannot open the control channel: {exc}") from exc

    async def _hello(self, registration: Registration) -> Hello:
        installed = await asyncio.to_thread(self.store.installed_cloud_sequence)
        self.status.installed_seq = installed
        return Hello(
            self.version,
            installed,
            "degraded" if self.status.alarms else "ok",
            tuple(self.status.alarms),
            registration.trust_mode,
        )

    async def _converse(self, websocket: Any, registration: Registration) -> None:
        await websocket.send(encode_message(await self._hello(registration)))
        first = decode_cloud_message(
            await asyncio.wait_for(websocket.recv(), self.settings.open_timeout)
        )
        if not isinstance(first, Welcome) or first.connector_id != registration.connector_id:
            raise ChannelError("the cloud did not answer the hello with our welcome")
        self.status.heartbeat_interval = first.heartbeat_interval
        self.status.cloud_seq = first.current_seq
        self.status.set("connected")
        self.status.connections += 1
        self.status.unreachable_since = None
        self.status.next_attempt_at = None
        self._attempt = self.status.attempt = 0
        self._update_alarms()
        metrics.CONNECTED.set(1)
        log.info("connector.control_connected", cloud=registration.cloud_url)
        beats = asyncio.create_task(self._heartbeats(websocket))
        try:
            async for text in websocket:
                message = decode_cloud_message(text)
                if isinstance(message, Push):
                    await self._on_push(websocket, message, registration)
                elif isinstance(message, CommandFrame):
                    if await self._on_command(websocket, message, registration):
                        return
                elif isinstance(message, Welcome):
                    self.status.heartbeat_interval = message.heartbeat_interval
        finally:
            beats.cancel()
            # gather, not suppress(CancelledError): if this task itself is cancelled while it
            # waits here, suppress would swallow that cancellation too and the channel loop
            # would reconnect forever instead of stopping.
            await asyncio.gather(beats, return_exceptions=True)

    async def _heartbeats(self, websocket: Any) -> None:
        while True:
            await asyncio.sleep(self.status.heartbeat_interval)
            installed = await asyncio.to_thread(self.store.installed_cloud_sequence)
            self.status.installed_seq = installed
            beat = Heartbeat(
                self.version,
                installed,
                "degraded" if self.status.alarms else "ok",
                tuple(self.status.alarms),
            )
            try:
                await websocket.send(encode_message(beat))
                metrics.HEARTBEATS.inc()
                self.status.last_heartbeat_sent = time.time()
                # RFC 6455 §5.5.2: the cloud's WebSocket layer answers a ping once it has
                # read everything before it, the heartbeat included: its acknowledgement.
                pong = await websocket.ping()
                await asyncio.wait_for(pong, self.status.heartbeat_interval)
                self.status.last_heartbeat_acked = time.time()
            except TimeoutError:
                log.info("connector.control_heartbeat_unacknowledged")
            except ConnectionClosed:
                return

    async def _on_push(self, websocket: Any, push: Push, registration: Registration) -> None:
        outcome = await asyncio.to_thread(
            apply_push, push.manifest, registration, self.store, self.clock()
        )
        answer = outcome.answer
        if isinstance(answer, Ack):
            self.status.installed_seq = outcome.sequence
        self.status.last_push = {
            "at": time.time(),
            "sequence": outcome.sequence,
            "applied": isinstance(answer, Ack),
            "reason": answer.reason if isinstance(answer, Refusal) else None,
            "added": list(outcome.added),
            "removed": list(outcome.removed),
        }
        if isinstance(answer, Refusal):
            metrics.PUSHES_REFUSED.labels(answer.reason).inc()
        else:
            metrics.PUSHES_APPLIED.inc()
        await websocket.send(encode_message(answer))

    async def _on_command(
        self, websocket: Any, frame: CommandFrame, registration: Registration
    ) -> bool:
        """Carry out a signed command; True when the channel must end (deregistered)."""
        checked = await asyncio.to_thread(
            check_command, frame.token, registration, self.ledger, self.clock()
        )
        if isinstance(checked, Refusal):
            metrics.COMMANDS_REFUSED.labels(checked.reason).inc()
            await websocket.send(encode_message(checked))
            return False
        command: Command = checked
        if command.name == "ping":
            await websocket.send(encode_message(Pong(command.command_id)))
        elif command.name == "refresh_trust":
            installed = await asyncio.to_thread(self.store.installed_cloud_sequence)
            await websocket.send(encode_message(Ack(command_id=command.command_id)))
            await websocket.send(encode_message(Resync(installed)))
        elif command.name == "deregister":
            await asyncio.to_thread(
                deregister_locally,
                registration,
                self.store,
                self.database,
                self.credentials,
                self.clock,
            )
            with contextlib.suppress(ConnectionClosed):
                await websocket.send(encode_message(Ack(command_id=command.command_id)))
            self.status.set("not_registered")
            return True
        elif command.name in self.command_handlers:
            await asyncio.to_thread(self.command_handlers[command.name], command)
            await websocket.send(encode_message(Ack(command_id=command.command_id)))
        return False


def install_control(
    app: FastAPI, services: Any, settings: ChannelSettings | None = None
) -> ControlClient:
    """Run the channel with the connector app; add ``/control`` (the channel's page),
    ``/api/control`` and ``/metrics`` (``control_views``).

    ``services`` is the app's ``ConnectorServices``. Raises ValueError on a bad
    ``HYBRIDGE_CONTROL_*`` value.
    """
    client = ControlClient(
        store=services.store,
        database=services.database,
        credentials=services.credentials,
        data_dir=services.settings.data_dir,
        clock=services.settings.clock,
        settings=settings or ChannelSettings.from_env(),
    )
    app.state.control = client
    app.include_router(
        control_router(client.status.view, services.auth.current_admin, services.templates)
    )
    services.templates.env.globals["control_status"] = client.status.view
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        task = asyncio.create_task(client.run(), name="control-channel")
        try:
            async with inner(app_) as state:
                yield state
        finally:
            task.cancel()
            # gather, not suppress(CancelledError): a suppressed CancelledError could be the
            # cancellation of the lifespan task itself, which must not be swallowed.
            await asyncio.gather(task, return_exceptions=True)

    app.router.lifespan_context = lifespan
    return client
