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

# No ``from __future__ import annotations``: FastAPI must resolve the route's local
# ``Annotated`` dependency aliases at definition time.
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, WebSocket
from fastapi.responses import RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event
from starlette.types import ASGIApp, Receive, Scope, Send

from hybridge.cloud import audit, control_store
from hybridge.cloud.control_hub import ControlHub
from hybridge.cloud.control_settings import ControlSettings
from hybridge.cloud.errors import CloudError
from hybridge.cloud.models import ca_list_version
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.services import CloudServices, portal_admin_dependency
from hybridge.web.auth import WebAuth

__all__ = ["ControlHub", "ControlSettings", "control_router", "install_control"]


class ControlCommandRefused(CloudError):
    """A portal command request names an unknown command or another organisation's
    connector (answered 400 with this message by the app's error pages)."""


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


class ControlEndpoint:
    """Pure ASGI middleware: a WebSocket to ``/control`` goes straight to the hub.

    The channel is the one long-lived connection the cloud holds per connector; routed
    through FastAPI it would keep FastAPI's and Starlette's per-request machinery (exit
    stacks, exception-handler wrappers, dependency state) alive for its whole life, several
    KiB per connector (bench/push_fanout.py). The hub needs none of it: it authenticates by
    certificate and speaks its own protocol. Everything else passes through untouched.
    """

    def __init__(self, app: ASGIApp, hub: ControlHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope.get("path") == "/control":
            await self.hub.serve(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def control_router(hub: ControlHub) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        # Counts only: no connector id, no secret (see control_metrics).
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


#: What an organisation's admin may send from the portal; ``deregister`` follows a
#: deregistration (the hub sends it), it is not a button.
PORTAL_COMMANDS = ("refresh_trust", "ping")


def commands_router(hub: ControlHub, auth: WebAuth) -> APIRouter:
    """``POST /connectors/{id}/command``: an admin asks one of their connectors to act."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[PortalAdmin, Depends(portal_admin_dependency(auth))]

    @router.post("/connectors/{connector_id}/command")
    async def send(
        connector_id: str,
        admin: Admin,
        command: Annotated[str, Form(max_length=32)],
    ) -> Response:
        if command not in PORTAL_COMMANDS:
            raise ControlCommandRefused(
                f"command {command!r} cannot be sent from the portal; one of {PORTAL_COMMANDS!r}"
            )

        def owned() -> bool:
            with hub.services.database.transaction() as session:
                facts = control_store.connector_facts(session, connector_id)
                # Tenancy: an admin commands the connectors of their own organisation only.
                if facts is None or facts.org_id != admin.organisation.id:
                    return False
                audit.record(
                    session,
                    hub.services.settings.clock(),
                    admin.login,
                    "connector.command_sent",
                    {"connector_id": connector_id, "command": command},
                    admin.organisation.id,
                )
                return True

        if not await asyncio.to_thread(owned):
            raise ControlCommandRefused(
                f"connector {connector_id[:64]!r} is not one of {admin.organisation.name!r}"
            )
        await hub.send_command(connector_id, command)
        return RedirectResponse("/connectors", status_code=303)

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
    app.add_middleware(ControlEndpoint, hub=hub)
    app.include_router(control_router(hub))
    app.include_router(commands_router(hub, services.auth))
    _watch_ca_list(services, hub.ca_list_committed)
    services.templates.env.globals["control_view"] = hub.view
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
