"""The cloud's call-service SIP peer (``callservice.<domain>``), wired into the cloud.

Runs **inside the cloud process**, started and stopped with the app's lifespan
(``install_callservice``), rather than as a separate ``hybridge cloud callservice serve``:

- it needs what the cloud process already holds: the database (organisations and their
  edges, the published CA list that is the cloud's trust anchors), and the portal's
  "Test call" button runs a call from the same process;
- one asyncio loop serves both; SIP signalling for test and demo calls is light next to
  the HTTP work, and uvicorn's loop is the one the lifespan runs on;
- one process to start, stop and supervise, as in the demo and a small deployment. A
  larger deployment runs more cloud processes on the same database; each may listen.

It listens only when ``hybridge cloud serve`` is given ``--sip-port`` (and the
call-service certificate and key). The pieces: ``callservice_edges`` (each organisation's
edge name and address), ``callservice_peer`` (who the TLS peer is), ``callservice_uas``
(the SIP answers, no I/O), ``callservice_server`` (the listener), ``callservice_call`` (a
test call out), ``callservice_views`` (the portal page).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from cryptography import x509
from fastapi import FastAPI

from hybridge.cloud import calist
from hybridge.cloud.callservice_edges import list_org_edges
from hybridge.cloud.callservice_errors import CallServiceSetupError
from hybridge.cloud.callservice_server import CallServiceConfig, CallServiceServer
from hybridge.cloud.callservice_settings import CallServiceSettings
from hybridge.cloud.services import CloudServices
from hybridge.storage.db import Database

log = logging.getLogger("hybridge.cloud.callservice")


def load_anchors(database: Database, settings: CallServiceSettings) -> list[x509.Certificate]:
    """The CA certificates an edge's certificate must chain to.

    ``settings.trust_file`` when given; otherwise the cloud's published CA list (the list
    every connector and edge of the platform receives, so both ends trust the same roots).

    Raises:
        CallServiceSetupError: the file cannot be read, or there is no anchor at all.
    """
    if settings.trust_file is not None:
        try:
            anchors = x509.load_pem_x509_certificates(settings.trust_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise CallServiceSetupError(
                f"cannot read the call service's trust file {str(settings.trust_file)!r}: {exc}"
            ) from exc
    else:
        with database.transaction() as db:
            published = calist.current_certificates(db)
        anchors = [x509.load_der_x509_certificate(ca.der) for ca in published]
    if not anchors:
        raise CallServiceSetupError(
            "the call service has no trust anchors: publish a CA list or give --sip-trust FILE"
        )
    return anchors


def config_loader(database: Database, settings: CallServiceSettings) -> CallServiceConfig:
    """The anchors and every organisation's edge, read now (blocking; run in a thread)."""
    anchors = load_anchors(database, settings)
    with database.transaction() as db:
        edges = list_org_edges(db)
    return CallServiceConfig(tuple(anchors), tuple(edges))


def install_callservice(app: FastAPI, services: CloudServices) -> None:
    """Add the portal's call-service page, and run the listener with the app when the
    settings ask for it (``app.state.callservice``).

    The listener starts in the lifespan (wrapping whatever lifespan the app already has); a
    listener that cannot start (port taken, certificate unusable) stops the app's startup
    with the reason.
    """
    from hybridge.cloud.callservice_views import callservice_router

    app.include_router(callservice_router(services))
    settings = services.settings.callservice
    if settings is None:
        return
    database = services.database
    server = CallServiceServer(settings, lambda: config_loader(database, settings))
    app.state.callservice = server
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        await server.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await server.close()

    app.router.lifespan_context = lifespan
