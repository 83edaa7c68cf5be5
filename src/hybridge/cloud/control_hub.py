"""The control hub of one cloud process: the connected connectors and what they are sent.

On a CA-list change (a commit seen by ``cloud.control``'s session hook and announced through
the broker, or the database poll) the hub signs the new version for each automatic-mode
connector it holds (``aud`` = the connector id, ``control_signing.FanoutSigner``) and
pushes it; a connector whose hello reports an older sequence is pushed the current one at
once (catch-up). Acks, refusals and heartbeats are written in batches
(``control_store``). Commands are signed with the next command id of the connector and
delivered through whichever process holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from hybridge.cloud import calist, control_store
from hybridge.cloud import control_metrics as metrics
from hybridge.cloud.control_broker import Broker, make_broker
from hybridge.cloud.control_channel import (
    CLOSE_FORBIDDEN,
    Channel,
    ChannelProtocol,
    close_websocket,
)
from hybridge.cloud.control_settings import ControlSettings
from hybridge.cloud.control_signing import FanoutSigner
from hybridge.cloud.control_store import ChannelEvent, ChannelView
from hybridge.cloud.services import CloudServices
from hybridge.core.control import (
    CommandFrame,
    Push,
    encode_message,
)
from hybridge.core.control_commands import Command, sign_command

log = logging.getLogger("hybridge.cloud.control")

#: Channel events written per transaction (see ``_flush``).
FLUSH_CHUNK = 250


class ControlHub(ChannelProtocol):
    """The connected connectors of this cloud process, and what is pushed to them."""

    def __init__(self, services: CloudServices, settings: ControlSettings) -> None:
        self.services = services
        self.settings = settings
        self.channels: dict[str, Channel] = {}
        self._broker: Broker = make_broker(settings.redis_url)
        self._events: list[ChannelEvent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: FanoutSigner | None = None
        self._fanout_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------

    def reconfigure(self, settings: ControlSettings) -> None:
        """Use ``settings`` instead of those given at construction (``cloud serve``'s flags).

        Raises:
            RuntimeError: the hub has started already.
        """
        if self._tasks:
            raise RuntimeError("the control hub is running; settings can change before start")
        self.settings = settings
        self._broker = make_broker(settings.redis_url)

    async def start(self) -> None:
        """Subscribe to the broker and start the poll and the batch writer."""
        self._loop = asyncio.get_running_loop()
        await self._broker.start(self._on_notice)
        self._version = await self._read_version()
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name="control-poll"),
            asyncio.create_task(self._writer_loop(), name="control-writer"),
            asyncio.create_task(self._liveness_loop(), name="control-liveness"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # gather, not suppress(CancelledError) around each await: if the task running stop()
        # is itself cancelled meanwhile, suppress would swallow that cancellation too.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._broker.close()
        await self._flush()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._mark_offline)

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
        loop.call_soon_threadsafe(self._spawn_publish, {"type": "ca_list"})

    def _spawn_publish(self, notice: dict[str, Any]) -> None:
        # The loop keeps only weak references to tasks: hold it until it is done.
        task = asyncio.get_running_loop().create_task(self._broker.publish(notice))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

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

        return await asyncio.to_thread(read)

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

    async def _push_if_behind(self, channel: Channel) -> None:
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

    async def _liveness_loop(self) -> None:
        # One sweep for every channel instead of a timeout on each receive (a timer and a
        # future per connection); a dead peer is closed within ~1.25 x the liveness timeout.
        every = max(0.5, self.settings.liveness_timeout / 4)
        while True:
            await asyncio.sleep(every)
            try:
                await self.close_silent()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control: liveness sweep failed")

    async def _check_statuses(self) -> None:
        """Close channels of connectors deregistered or revoked since they connected."""
        ids = list(self.channels)
        if not ids:
            return

        def read() -> dict[str, str]:
            with self.services.database.transaction() as session:
                return control_store.statuses(session, ids)

        found = await asyncio.to_thread(read)
        for connector_id in ids:
            status = found.get(connector_id, "unknown")
            channel = self.channels.get(connector_id)
            if status != "active" and channel is not None:
                if status in ("deregistered", "revoked"):
                    # The connector must stop trusting what the cloud pushed and drop the
                    # credential that no longer works: tell it, signed, then close.
                    with contextlib.suppress(Exception):
                        await self.send_command(connector_id, "deregister")
                await close_websocket(channel.websocket, CLOSE_FORBIDDEN, f"connector is {status}")

    # -- commands ---------------------------------------------------------------------

    async def send_command(
        self, connector_id: str, name: str, args: dict[str, str] | None = None
    ) -> int:
        """Sign ``name`` for ``connector_id`` with the next command id and deliver it to
        whichever cloud process holds the connector. Returns the command id."""

        def reserve() -> int:
            with self.services.database.transaction() as session:
                return control_store.next_command_id(session, connector_id)

        command_id = await asyncio.to_thread(reserve)
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

        def write(chunk: list[ChannelEvent]) -> None:
            with self.services.database.transaction() as session:
                control_store.write_events(session, chunk, self.settings.node)

        # Bounded transactions: on SQLite a writer holds the database lock until it commits,
        # and 10,000 connectors coming online at once (bench/push_fanout.py) made one
        # transaction long enough to lock the portal's logins out (busy timeout, 400).
        for start in range(0, len(batch), FLUSH_CHUNK):
            await asyncio.to_thread(write, batch[start : start + FLUSH_CHUNK])

    def view(self, connector_id: str) -> ChannelView:
        """The portal's view of ``connector_id`` (from the database: any node may hold it)."""
        stale = dt.timedelta(seconds=self.settings.liveness_timeout)
        with self.services.database.transaction() as session:
            return control_store.channel_view(session, connector_id, self._now(), stale)

    def current_sequence(self) -> int | None:
        with self.services.database.transaction() as session:
            return control_store.current_sequence(session)
