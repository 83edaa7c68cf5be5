"""Fan-out between cloud processes: Redis pub/sub when configured, in-process otherwise.

DESIGN.md §6: several cloud processes share one database; a connector is held by exactly
one of them, so a CA-list change made through one process (or a command for a connector
held elsewhere) must reach every process. That is Redis pub/sub's job (redis-py's asyncio
client, ``redis.asyncio``), not a home-made relay. Messages are small JSON notices (``{"type":
"ca_list"}``, ``{"type": "command", "connector_id": ..., "token": ...}``); the facts stay in
the database, which every process reads after a notice. A lost notice (Redis restarting)
costs latency, not correctness: each hub also polls the database (``poll_interval``).

Pub/sub is at-most-once and unauthenticated by content: a notice only ever makes a process
*re-read* the database, and a command token is verified by the connector with the
list-signing key, so a forged notice can do no more than cause a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hybridge.cloud.errors import CloudError

log = logging.getLogger("hybridge.cloud.control")

CHANNEL = "hybridge:control"
#: A notice is a few hundred bytes; anything far larger on our channel is not ours.
MAX_NOTICE = 64 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class BrokerError(CloudError):
    """The broker cannot be reached or used (bad URL, redis-py missing, connection refused)."""


class Broker(Protocol):
    async def start(self, handler: Handler) -> None: ...

    async def publish(self, notice: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """One process: a notice goes straight to this process's handler."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def publish(self, notice: dict[str, Any]) -> None:
        if self._handler is not None:
            await self._handler(notice)

    async def close(self) -> None:
        self._handler = None


class RedisBroker:
    """Redis pub/sub on ``CHANNEL``; every process (including the publisher) gets each notice."""

    def __init__(self, url: str) -> None:
        try:
            # Imported here: a single-process cloud does not need redis-py installed.
            self._redis_module: Any = importlib.import_module("redis.asyncio")
        except ImportError as exc:
            raise BrokerError(
                "a Redis URL is configured but redis-py is not installed (pip install 'redis>=5')"
            ) from exc
        self._url = url
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, handler: Handler) -> None:
        try:
            self._client = self._redis_module.from_url(self._url)
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
        except Exception as exc:  # redis-py raises its own tree and OSError
            raise BrokerError(f"cannot subscribe to Redis at {_safe(self._url)!r}: {exc}") from exc
        self._task = asyncio.create_task(self._listen(pubsub, handler), name="control-broker")

    async def _listen(self, pubsub: Any, handler: Handler) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database poll covers the gap; keep trying to listen.
                log.warning("control broker: Redis read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            data = message.get("data")
            if not isinstance(data, bytes | str) or len(data) > MAX_NOTICE:
                continue
            try:
                notice = json.loads(data)
            except ValueError:
                log.warning("control broker: ignored a notice that is not JSON")
                continue
            if isinstance(notice, dict):
                try:
                    await handler(notice)
                except Exception:
                    log.exception("control broker: handling a notice failed")

    async def publish(self, notice: dict[str, Any]) -> None:
        try:
            await self._client.publish(CHANNEL, json.dumps(notice, separators=(",", ":")))
        except Exception as exc:
            log.warning("control broker: Redis publish failed (the poll will catch up): %s", exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # gather: a suppressed CancelledError could be the cancellation of our caller.
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()


def _safe(url: str) -> str:
    """The URL without a password (``redis://:secret@host`` must never reach a log)."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def make_broker(redis_url: str | None) -> Broker:
    """Redis when ``redis_url`` is set, else in-process."""
    return RedisBroker(redis_url) if redis_url else InProcessBroker()
