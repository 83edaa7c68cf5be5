"""The traversal client's admin page and JSON API, and its wiring into the connector app.

Page (login + session CSRF): ``/traversal`` shows the configuration and the live state
(connected since, last keep-alive round trip, re-dials, last error, messages relayed);
``POST /traversal`` saves, ``POST /traversal/clear`` removes the configuration.

API (session cookie + ``X-CSRF-Token`` on unsafe methods): ``GET /api/traversal``,
``PUT /api/traversal`` (JSON: ``edge``, ``edge_name``, ``premises``, optional
``premises_name``, ``keepalive_interval``, ``certificate_pem``, ``key_pem``, and the
premises listener: ``listen``, ``listen_transport``, ``listen_allow``,
``listen_require_client_cert``),
``DELETE /api/traversal``. The key is write-only: no page, answer or log line shows it.

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.services import ConnectorServices
from hybridge.connector.traversal_config import (
    DEFAULT_KEEPALIVE,
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.connector.traversal_errors import (
    TraversalConfigInvalid,
    TraversalError,
    TraversalNotConfigured,
)
from hybridge.connector.traversal_link import TraversalSettings
from hybridge.connector.traversal_listener_config import listener_from_fields
from hybridge.connector.traversal_service import TraversalClient
from hybridge.vault import Secret, Vault
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

_MAX_FIELD = 64 * 1024


def install_traversal(app: FastAPI, services: ConnectorServices, vault: Vault) -> TraversalClient:
    """Wire the traversal store, client, routes and error pages into the connector app.

    The client starts and stops with the app's lifespan (wrapping whatever lifespan the app
    already has). Raises ValueError on a bad ``HYBRIDGE_TRAVERSAL_*`` value.
    """
    store = TraversalStore(services.database, vault, services.settings.clock)
    client = TraversalClient(
        store,
        services.store,
        services.credentials,
        host=services.settings.connector_hostname,
        settings=TraversalSettings.from_env(),
    )
    app.state.traversal = client

    async def _traversal_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, TraversalNotConfigured) else 400
        response: Response
        if request.url.path.startswith("/api/"):
            response = JSONResponse({"error": "refused", "detail": str(exc)}, status)
        else:
            response = render(
                services.templates,
                request,
                "error.html",
                {"title": "refused", "message": str(exc), "status": status},
                web=getattr(request.state, "hybridge_web_session", None),
                status_code=status,
            )
        services.auth.apply_cookie(request, response)
        return response

    app.add_exception_handler(TraversalError, _traversal_error)
    app.include_router(traversal_router(services.auth, client))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        client.start()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            await client.stop()

    app.router.lifespan_context = lifespan
    return client


def config_from(values: dict[str, Any]) -> tuple[TraversalConfig, Secret | None]:
    """A configuration and the optional key from form or JSON fields.

    Raises ``TraversalConfigInvalid`` for a missing or malformed field.
    """
    values = dict(values)  # the caller re-renders its own copy on error
    require = values.pop("listen_require_client_cert", False)
    if isinstance(require, str):
        require = require.strip().lower() in ("on", "true", "1", "yes")
    if not isinstance(require, bool):
        raise TraversalConfigInvalid("field 'listen_require_client_cert' must be true or false")
    for name, value in values.items():
        if value is not None and not isinstance(value, str | int | float):
            raise TraversalConfigInvalid(f"field {name!r} must be text or a number")
        if isinstance(value, str) and len(value) > _MAX_FIELD:
            raise TraversalConfigInvalid(f"field {name!r} is longer than {_MAX_FIELD} characters")
    missing = [n for n in ("edge", "edge_name", "premises") if not values.get(n)]
    if missing:
        raise TraversalConfigInvalid(f"missing field(s): {', '.join(missing)}")
    interval = values.get("keepalive_interval") or DEFAULT_KEEPALIVE
    try:
        interval = float(interval)
    except ValueError:
        raise TraversalConfigInvalid(f"keep-alive interval {interval!r} is not a number") from None
    certificate = (values.get("certificate_pem") or "").strip() or None
    key_text = (values.get("key_pem") or "").strip()
    config = TraversalConfig(
        edge=EdgeAddress.parse(str(values["edge"])),
        edge_name=str(values["edge_name"]).strip(),
        premises=PremisesServer.parse(
            str(values["premises"]), (values.get("premises_name") or "").strip() or None
        ),
        keepalive_interval=interval,
        certificate_pem=certificate + "\n" if certificate else None,
        listener=listener_from_fields(
            str(values.get("listen") or ""),
            str(values.get("listen_transport") or ""),
            str(values.get("listen_allow") or ""),
            require,
        ),
    )
    return config, Secret.from_text(key_text + "\n") if key_text else None


def _listener_form(listener: dict[str, Any] | None) -> dict[str, str]:
    if listener is None:
        return {}
    return {
        "listen": listener["address"],
        "listen_transport": listener["transport"],
        "listen_allow": ", ".join(listener["allow"]),
        "listen_require_client_cert": "on" if listener["require_client_cert"] else "",
    }


def _actor(web: WebSession) -> str:
    return f"web:{web.admin_login}"


def _stored_pem(client: TraversalClient) -> str:
    record = client.store.get()
    return (record.config.certificate_pem or "") if record is not None else ""


def traversal_router(auth: WebAuth, client: TraversalClient) -> APIRouter:
    """The admin's traversal page and API; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]
    store = client.store

    def page(
        request: Request,
        *,
        form: dict[str, str] | None = None,
        error: str | None = None,
        flash: str | None = None,
        status_code: int = 200,
    ) -> Response:
        services: ConnectorServices = request.app.state.connector
        record = store.get()
        view = record.public_view() if record is not None else None
        if form is None:
            form = (
                {
                    "edge": view["edge"],
                    "edge_name": view["edge_name"],
                    "premises": view["premises"],
                    "premises_name": view["premises_name"],
                    "keepalive_interval": f"{view['keepalive_interval']:g}",
                    "certificate_pem": _stored_pem(client),
                    **_listener_form(view.get("listener")),
                }
                if view is not None
                else {"keepalive_interval": f"{DEFAULT_KEEPALIVE:g}"}
            )
        form = {k: v for k, v in form.items() if k != "key_pem"}  # write-only, never echoed
        return render(
            services.templates,
            request,
            "traversal.html",
            {
                "title": "Edge traversal",
                "config": view,
                "status": client.status.view(),
                "f": form,
                "error": error,
                "flash": flash,
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    @router.get("/traversal")
    def traversal_page(request: Request, web: Admin) -> Response:
        return page(request)

    @router.post("/traversal")
    async def traversal_save(request: Request, web: Admin) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf_token"}
        try:
            config, key = config_from(fields)
            await run_in_threadpool(lambda: store.set(config, key=key, actor=_actor(web)))
        except TraversalConfigInvalid as exc:
            return page(request, form=fields, error=str(exc), status_code=400)
        return page(request, flash="Saved; the traversal client re-dials the edge.")

    @router.post("/traversal/clear")
    def traversal_clear(request: Request, web: Admin) -> Response:
        store.clear(actor=_actor(web))
        return RedirectResponse("/traversal", status_code=303)

    @router.get("/api/traversal")
    def api_show(web: Admin) -> JSONResponse:
        record = store.get()
        return JSONResponse(
            {
                "configured": record is not None,
                "config": record.public_view() if record is not None else None,
                "status": client.status.view(),
            }
        )

    @router.put("/api/traversal")
    async def api_set(request: Request, web: Admin) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            raise TraversalConfigInvalid("the request body is not JSON") from exc
        if not isinstance(body, dict):
            raise TraversalConfigInvalid(
                'expected {"edge": "host:port", "edge_name": ..., "premises": "sip:...", ...}'
            )
        config, key = config_from(body)
        record = await run_in_threadpool(lambda: store.set(config, key=key, actor=_actor(web)))
        return JSONResponse({"configured": True, "config": record.public_view()})

    @router.delete("/api/traversal")
    def api_clear(web: Admin) -> JSONResponse:
        if not store.clear(actor=_actor(web)):
            raise TraversalNotConfigured("no traversal configuration is stored")
        return JSONResponse({"configured": False})

    return router
