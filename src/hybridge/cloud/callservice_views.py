"""The portal's call-service page: the organisation's edge, and a "Test call" button.

``GET /callservice`` shows the organisation's edge (the TLS name the call service admits
it under, the address test calls dial) and whether the call service runs in this process;
``POST /callservice/edge`` sets the edge; ``POST /callservice/test-call`` places a test
call to it from this process (``callservice_call.place_test_call``) and shows every
response with its time. Tenancy: an admin sees and calls their own organisation's edge
only. Every unsafe request passes the portal's CSRF check.
"""

# No ``from __future__ import annotations``: FastAPI resolves the routes' ``Annotated``
# dependency aliases at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from hybridge.cloud.callservice_edges import OrgEdge, list_org_edges, set_org_edge
from hybridge.cloud.callservice_errors import CallServiceError
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.services import CloudServices, Services, portal_admin_dependency
from hybridge.web.pages import render


def _edge_of(services: CloudServices, admin: PortalAdmin) -> OrgEdge | None:
    with services.database.transaction() as db:
        for edge in list_org_edges(db):
            if edge.org_id == admin.organisation.id:
                return edge
    return None


def callservice_router(services: CloudServices) -> APIRouter:
    """The page and its two forms (module docstring)."""
    auth = services.auth
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[PortalAdmin, Depends(portal_admin_dependency(auth))]

    def page(
        request: Request,
        admin: PortalAdmin,
        services: CloudServices,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        settings = services.settings.callservice
        return render(
            services.templates,
            request,
            "callservice.html",
            {
                "admin": admin,
                "edge": _edge_of(services, admin),
                "running": settings is not None,
                "sip": f"{settings.public_host}:{settings.port}" if settings else None,
                **context,
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    @router.get("/callservice")
    def callservice_page(request: Request, admin: Admin, services: Services) -> Response:
        return page(request, admin, services)

    @router.post("/callservice/edge")
    def callservice_edge(
        request: Request,
        admin: Admin,
        services: Services,
        subject_name: Annotated[str, Form()],
        address: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            with services.database.transaction() as db:
                edge = set_org_edge(
                    db,
                    admin.organisation.name,
                    subject_name.strip(),
                    address.strip() or None,
                    actor=admin.login,
                    now=services.settings.clock(),
                )
        except CallServiceError as exc:
            return page(request, admin, services, 400, flash=str(exc), flash_kind="bad")
        return page(request, admin, services, flash=f"Edge set: {edge.subject_name}")

    @router.post("/callservice/test-call")
    async def callservice_test_call(
        request: Request,
        admin: Admin,
        services: Services,
        to: Annotated[str, Form()],
    ) -> Response:
        from hybridge.cloud.callservice import load_anchors
        from hybridge.cloud.callservice_call import place_test_call

        settings = services.settings.callservice
        edge = _edge_of(services, admin)
        if settings is None or edge is None:
            reason = (
                "the call service does not run in this cloud (start it with --sip-port)"
                if settings is None
                else "set your organisation's edge first"
            )
            return page(request, admin, services, 409, flash=reason, flash_kind="bad")
        try:
            anchors = load_anchors(services.database, settings)
            report = await place_test_call(
                edge,
                to_uri=to.strip(),
                anchors=anchors,
                cert_file=settings.cert_file,
                key_file=settings.key_file,
                via_host=settings.public_host,
            )
        except (CallServiceError, ValueError) as exc:
            return page(request, admin, services, 400, flash=str(exc), flash_kind="bad")
        return page(
            request,
            admin,
            services,
            report=report,
            flash=("Test call completed" if report.ok else f"Test call failed: {report.reason}"),
            flash_kind="ok" if report.ok else "bad",
        )

    return router
