"""The traversal client's premises listener, run for the client (a mixin of ``TraversalClient``).

The listener follows the stored configuration, not the edge connection: it is (re)started
when its settings, the premises server or the connector's certificate change, stopped when
the configuration goes, and its connections are served by the client's own read loop and
relay (``traversal_forwarding.PremisesForwarding._read``), each under its ``conn_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from hybridge.connector import traversal_metrics as metrics
from hybridge.connector.traversal_link import Link, TraversalSettings, TraversalStatus, identity
from hybridge.connector.traversal_listener import (
    PremisesAcceptor,
    allowed_networks,
    listener_context,
)
from hybridge.core.errors import HybridgeError
from hybridge.truststore.interfaces import TrustUse

if TYPE_CHECKING:
    from hybridge.connector.credentials import CredentialStore
    from hybridge.connector.traversal_config import TraversalConfig, TraversalStore
    from hybridge.truststore import TrustStore

log = logging.getLogger("hybridge.connector.traversal")
#: Seconds between attempts to start a listener that could not start.
LISTENER_RETRY = 10.0


class PremisesListening:
    """Runs the premises listener the configuration asks for; see the module."""

    store: TraversalStore
    trust: TrustStore
    credentials: CredentialStore
    settings: TraversalSettings
    status: TraversalStatus
    _acceptor: PremisesAcceptor | None
    _acceptor_for: TraversalConfig | None
    _inbound: dict[int, Link]
    _listener_retry_at: float = 0.0
    _acceptor_anchors: tuple[Any, ...] = ()

    async def _read(self, link: Link, config: TraversalConfig) -> None:
        raise NotImplementedError  # traversal_forwarding's read loop

    async def _ensure_listener(self, config: TraversalConfig) -> None:
        """Run the listener ``config`` asks for: (re)started when its settings, the premises
        server, the certificate or (over TLS) the platform anchors change."""
        wanted = config.listener
        current = self._acceptor_for
        anchors: tuple[Any, ...] = ()
        if wanted is not None and wanted.transport == "tls":
            try:
                # OpenSSL's CA list is fixed in the context: a trust-store change (a CA
                # removed by a push or by the admin) must rebuild it, and drop connections
                # admitted under the old anchors.
                anchors = tuple(await asyncio.to_thread(self.trust.anchors_for, TrustUse.PLATFORM))
            except HybridgeError:
                anchors = self._acceptor_anchors  # unreadable now: keep what runs
        if (
            current is not None
            and current.listener == wanted
            and current.premises == config.premises
            and current.certificate_pem == config.certificate_pem
            and anchors == self._acceptor_anchors
        ):
            return
        await self._stop_listener()
        if wanted is None:
            return
        self.status.listener = str(wanted)
        try:
            context = None
            if wanted.transport == "tls":
                cert_pem, key = await asyncio.to_thread(
                    identity, config, self.store, self.credentials
                )
                context = await asyncio.to_thread(listener_context, wanted, anchors, cert_pem, key)
            acceptor = PremisesAcceptor(
                wanted,
                config.premises,
                context=context,
                anchors=anchors,
                allowed=await allowed_networks(wanted, config.premises),
                settings=self.settings,
                on_link=lambda link: self._serve_inbound(link, config),
            )
            await acceptor.start()
        except HybridgeError as exc:
            # Not fatal to the traversal connection; retried (``_retry_listener``).
            self._listener_retry_at = time.monotonic() + LISTENER_RETRY
            level = logging.INFO if self.status.listener_error == str(exc) else logging.WARNING
            self.status.listener_error = str(exc)
            log.log(level, "traversal: premises listener: %s; retrying in %gs", exc, LISTENER_RETRY)
            return
        self._acceptor, self._acceptor_for = acceptor, config
        self._acceptor_anchors = anchors
        self.status.listener_error = None
        log.info(
            "traversal: listening for the premises server on %s (%s%s)",
            wanted,
            wanted.transport,
            ", client certificate required" if wanted.require_client_cert else "",
        )

    async def _retry_listener(self, config: TraversalConfig) -> None:
        """Start again a listener that failed to start (a port still in use, ...) and
        follow trust-store changes of a TLS listener; called every configuration poll."""
        listener = config.listener
        if listener is None:
            return
        if self._acceptor is None:
            if time.monotonic() >= self._listener_retry_at:
                await self._ensure_listener(config)
        elif listener.transport == "tls":
            await self._ensure_listener(config)

    async def _stop_listener(self) -> None:
        acceptor, self._acceptor, self._acceptor_for = self._acceptor, None, None
        self._acceptor_anchors = ()
        if acceptor is not None:
            await acceptor.close()
        self.status.listener = None
        self.status.premises_inbound = 0
        metrics.PREMISES_INBOUND.set(0)

    async def _serve_inbound(self, link: Link, config: TraversalConfig) -> None:
        self._inbound[link.conn_id] = link
        self.status.premises_inbound = len(self._inbound)
        metrics.PREMISES_INBOUND.set(len(self._inbound))
        try:
            await self._read(link, config)
        except Exception:  # one premises connection must not take the client down
            log.exception("traversal: %s failed", link.name)
        finally:
            self._inbound.pop(link.conn_id, None)
            link.writer.transport.abort()
            self.status.premises_inbound = len(self._inbound)
            metrics.PREMISES_INBOUND.set(len(self._inbound))
