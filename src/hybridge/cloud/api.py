"""The connectors' API, authenticated by their client certificate (mutual TLS).

Only deregistration (docs/registration.md step 7) for now; the control channel (issue 5)
will authenticate the same way.
"""

from typing import Annotated, Any

import sqlalchemy as sa
from cryptography import x509
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from hybridge.cloud import audit
from hybridge.cloud.models import connector
from hybridge.cloud.mtls import ConnectorAuthError, authenticate_connector, peer_certificate
from hybridge.cloud.services import Services


def get_peer_certificate(request: Request) -> x509.Certificate | None:
    """The TLS client certificate of this request (tests override this dependency)."""
    return peer_certificate(request.state)


PeerCertificate = Annotated[x509.Certificate | None, Depends(get_peer_certificate)]


def api_router() -> APIRouter:
    """``/api/...``: no cookie, no CSRF; the client certificate is the credential."""
    router = APIRouter(prefix="/api")

    @router.post("/connectors/{connector_id}/deregister")
    async def deregister(
        connector_id: str, services: Services, cert: PeerCertificate
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            now = services.settings.clock()
            with services.database.transaction() as db:
                authenticated = authenticate_connector(db, cert, services.keys, now)
                # A connector deregisters itself only, whatever id the path names.
                if authenticated != connector_id:
                    raise ConnectorAuthError(
                        f"certificate of connector {authenticated!r} cannot deregister "
                        f"{connector_id[:64]!r}"
                    )
                org_id = db.execute(
                    sa.select(connector.c.org_id).where(connector.c.id == connector_id)
                ).scalar_one()
                db.execute(
                    sa.update(connector)
                    .where(connector.c.id == connector_id)
                    .values(status="deregistered", last_seen_at=now)
                )
                audit.record(
                    db,
                    now,
                    "connector",
                    "connector.deregistered",
                    {"connector_id": connector_id},
                    org_id,
                )
            return {"connector_id": connector_id, "status": "deregistered"}

        return await run_in_threadpool(run)

    return router
