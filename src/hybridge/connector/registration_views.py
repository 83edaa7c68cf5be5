"""Registration pages and API: the form, the redirect, the callback, deregistration.

``POST /registration/start`` (CSRF-protected like every form) keeps the pending registration
in the admin's server-side session and answers 303 to the cloud's authorize URL
(docs/registration.md step 2). ``GET /registration/callback`` is where the cloud sends the
browser back; it needs the same logged-in admin, whose session holds the ``state``.
"""

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.errors import CloudUntrusted, ConnectorError
from hybridge.connector.registration_values import PendingRegistration
from hybridge.connector.services import ConnectorServices, Services
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

_PENDING = "registration_pending"


def _status(services: ConnectorServices, *, check: bool) -> dict[str, Any]:
    registration = services.registration.current()
    if registration is None:
        return {"registered": False}
    result: dict[str, Any] = {"registered": True, **registration.public_view()}
    result["installed_ca_list_sequence"] = services.store.installed_cloud_sequence()
    if check:
        health = services.registration.cloud_health()
        result["cloud_connection"] = {
            "ok": health.ok,
            "detail": health.detail,
            "needed_ca": None if health.ok else health.needed_ca,
        }
    return result


def registration_router(auth: WebAuth) -> APIRouter:
    """The registration pages and API; unsafe requests pass ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]

    def actor(web: WebSession) -> str:
        return f"web:{web.admin_login}"

    def page(
        request: Request,
        services: ConnectorServices,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        return render(
            services.templates,
            request,
            "registration.html",
            {
                "title": "Cloud registration",
                "hostname": services.settings.connector_hostname,
                **context,
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    @router.get("/registration")
    async def registration_page(request: Request, web: Admin, services: Services) -> Response:
        status = await run_in_threadpool(_status, services, check=True)
        pending = PendingRegistration.from_data(web.data.get(_PENDING))
        # Shown so the admin can compare it with the cloud's approval page (DESIGN.md §3.3).
        pending_view = None
        if pending is not None and not status["registered"]:
            fp = pending.key_fp
            pending_view = {
                "cloud_url": pending.cloud_url,
                "key_fp_grouped": " ".join(fp[i : i + 4] for i in range(0, len(fp), 4)),
            }
        return page(request, services, status=status, pending=pending_view)

    @router.post("/registration/start")
    def start(
        request: Request,
        web: Admin,
        services: Services,
        cloud_url: Annotated[str, Form(max_length=2000)],
        manage_ca: Annotated[str, Form(max_length=8)] = "",
        organisation: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        trust_mode = "auto" if manage_ca == "yes" else "manual"
        try:
            pending, url = services.registration.start(
                cloud_url, trust_mode, actor=actor(web), required_organisation=organisation
            )
        except ConnectorError as exc:
            return page(
                request,
                services,
                400,
                status=_status(services, check=False),
                error=str(exc),
                cloud_url=cloud_url,
            )
        auth.update_data(request, {**web.data, _PENDING: pending.to_data()})
        # docs/registration.md step 2: the connector itself redirects the browser.
        return RedirectResponse(url, status_code=303)

    def run_callback(request: Request, web: WebSession, services: ConnectorServices) -> Response:
        params = {k: v for k, v in request.query_params.items()}
        pending = PendingRegistration.from_data(web.data.get(_PENDING))
        state = params.get("state", "")
        if pending is not None and hmac.compare_digest(state.encode(), pending.state.encode()):
            # Single use: a state that matched is consumed, whatever happens next.
            auth.update_data(request, {k: v for k, v in web.data.items() if k != _PENDING})
        try:
            result = services.registration.complete(pending, params, actor=actor(web))
        except ConnectorError as exc:
            needed = exc.needed_ca if isinstance(exc, CloudUntrusted) else None
            return render(
                services.templates,
                request,
                "registration_result.html",
                {"title": "Registration refused", "error": str(exc), "needed_ca": needed},
                web=auth.web_session(request),
                status_code=400,
            )
        registration = result.registration
        return render(
            services.templates,
            request,
            "registration_result.html",
            {
                "title": "Registered",
                "registration": registration,
                "applied": result.applied,
            },
            web=auth.web_session(request),
        )

    @router.get("/registration/callback")
    async def callback(request: Request, web: Admin, services: Services) -> Response:
        return await run_in_threadpool(run_callback, request, web, services)

    @router.post("/registration/deregister")
    async def deregister(request: Request, web: Admin, services: Services) -> Response:
        result = await run_in_threadpool(lambda: services.registration.deregister(actor=actor(web)))
        return page(
            request,
            services,
            status=_status(services, check=False),
            deregistered=result,
        )

    # -- JSON API ---------------------------------------------------------------------

    @router.get("/api/registration")
    async def api_status(web: Admin, services: Services, check: bool = False) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(_status, services, check=check))

    @router.post("/api/registration/deregister")
    async def api_deregister(web: Admin, services: Services) -> JSONResponse:
        result = await run_in_threadpool(lambda: services.registration.deregister(actor=actor(web)))
        return JSONResponse(
            {
                "connector_id": result.connector_id,
                "cloud_told": result.cloud_told,
                "cloud_error": result.cloud_error,
                "anchors_removed": list(result.anchors_removed),
            }
        )

    return router
