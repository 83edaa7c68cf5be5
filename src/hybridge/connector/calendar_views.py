"""The connector's Calendar page and JSON API, and the calendar service's wiring.

``/calendar`` (admin login): the service's state, the enabled users with their sync state
(idle, syncing, backoff, error with its reason, paused), last sync, meetings counted, and
the alarms (a rejected impersonation password first). ``POST /calendar/refresh`` asks the
cloud for the user list now. ``GET /api/calendar`` is the same view as JSON;
``POST /api/calendar/refresh`` (``X-CSRF-Token``) the same action. ``POST /calendar/resume``
(and ``/api/calendar/resume``) restarts a configuration paused by a 401 when the password
was fixed on Exchange's side (a newly stored password restarts it by itself).

``install_calendar`` starts the service with the app's lifespan and stops it after, as a
start/stop pair around the lifespan it wraps (other parts wrap the same lifespan), and
registers the handler of the control command ``calendar_users_changed``.

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.calendar_service import CalendarService
from hybridge.connector.calendar_settings import CalendarSettings
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.services import ConnectorServices
from hybridge.core.control_commands import Command
from hybridge.vault import Vault
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

#: The control command the cloud sends when an organisation's enabled users change.
USERS_CHANGED = "calendar_users_changed"


def calendar_router(auth: WebAuth, service: CalendarService) -> APIRouter:
    """The Calendar page and API; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]

    @router.get("/calendar")
    def calendar_page(request: Request, web: Admin) -> Response:
        services: ConnectorServices = request.app.state.connector
        return render(
            services.templates,
            request,
            "calendar.html",
            {"title": "Calendar", "view": service.view()},
            web=web,
        )

    @router.post("/calendar/refresh")
    def calendar_refresh(web: Admin) -> Response:
        service.users_changed()
        return RedirectResponse("/calendar", status_code=303)

    @router.post("/calendar/resume")
    def calendar_resume(web: Admin) -> Response:
        service.resume()
        return RedirectResponse("/calendar", status_code=303)

    @router.get("/api/calendar")
    def api_calendar(web: Admin) -> JSONResponse:
        return JSONResponse(service.view())

    @router.post("/api/calendar/refresh")
    def api_refresh(web: Admin) -> JSONResponse:
        service.users_changed()
        return JSONResponse({"refresh": "requested"}, status_code=202)

    @router.post("/api/calendar/resume")
    def api_resume(web: Admin) -> JSONResponse:
        service.resume()
        return JSONResponse({"resume": "requested"}, status_code=202)

    return router


def _on_users_changed(service: CalendarService, command: Command) -> None:
    raw = command.args.get("version")
    version = int(raw) if raw is not None and raw.isdigit() else None
    service.users_changed(version)


def install_calendar(
    app: FastAPI,
    services: ConnectorServices,
    vault: Vault,
    exchange: ExchangeService,
    settings: CalendarSettings | None = None,
) -> CalendarService:
    """Create the calendar service, its routes, its command handler and its lifespan.

    Raises ValueError on a bad ``HYBRIDGE_CALENDAR_*`` value.
    """
    service = CalendarService(
        database=services.database,
        store=services.store,
        vault=vault,
        registration=services.registration,
        exchange=exchange,
        settings=settings or CalendarSettings.from_env(),
    )
    app.state.calendar = service
    app.include_router(calendar_router(services.auth, service))
    control = getattr(app.state, "control", None)
    handlers = getattr(control, "command_handlers", None)
    if isinstance(handlers, dict):
        handlers[USERS_CHANGED] = lambda command: _on_users_changed(service, command)
    status = getattr(control, "status", None)
    if status is not None:

        def publish(texts: list[str]) -> None:
            # The channel's own alarms stay; ours are replaced as a block (one assignment:
            # the channel's task reads the list from another thread).
            kept = [a for a in status.alarms if not a.startswith("calendar: ")]
            status.alarms = kept + texts

        service.on_alarms = publish
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        service.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await run_in_threadpool(service.stop)

    app.router.lifespan_context = lifespan
    return service
