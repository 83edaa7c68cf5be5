"""Exchange Online (Microsoft Graph) configuration pages and their JSON API.

Admin pages (login + session CSRF): ``/exchange/graph/new``, ``/exchange/graph/{id}``
(edit; the client secret field is write-only and shows "set on <date> by <who>"),
``POST /exchange/graph/{id}/test``, ``POST /exchange/graph/{id}/link`` (a one-time
credential-entry link, the page's twin of ``POST /api/exchange/graph/configs/{id}/links``
in ``credential_entry_views``), ``POST /exchange/graph/{id}/delete``. The list is the
Exchange page (``/exchange``).

API (session cookie + ``X-CSRF-Token``): ``GET/POST /api/exchange/graph/configs``,
``GET/PUT/DELETE /api/exchange/graph/configs/{id}``,
``POST /api/exchange/graph/configs/{id}/test``. A save whose connection check fails
answers 422 with the check and stores nothing, unless ``"save_anyway": true``.

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.exchange_errors import ExchangeConfigInvalid
from hybridge.connector.exchange_graph import GraphConfigService, GraphSaveOutcome, check_view
from hybridge.connector.exchange_graph_config import GraphConfig, GraphRecord
from hybridge.connector.exchange_views_common import (
    REFUSED_MESSAGE,
    link_page_view,
    read_form,
    read_save_body,
    save_answer,
)
from hybridge.connector.exchange_views_common import actor as _actor
from hybridge.connector.services import ConnectorServices
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

_FIELDS = ("display_name", "tenant_id", "client_id", "test_mailbox", "authority_host", "graph_url")


def _form_of(view: dict[str, Any] | None) -> dict[str, str]:
    if view is None:
        return {}
    return {key: str(view[key]) for key in _FIELDS}


def graph_router(auth: WebAuth, service: GraphConfigService) -> APIRouter:
    """The admin's Graph pages and API; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]

    def edit_page(
        request: Request,
        record: GraphRecord | None,
        *,
        form: dict[str, str] | None = None,
        outcome: GraphSaveOutcome | None = None,
        error: str | None = None,
        flash: str | None = None,
        test: dict[str, Any] | None = None,
        link: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        services: ConnectorServices = request.app.state.connector
        view = record.public_view() if record is not None else None
        return render(
            services.templates,
            request,
            "exchange_graph_form.html",
            {
                "title": view["display_name"] if view else "New Exchange Online configuration",
                "record": view,
                "f": form if form is not None else _form_of(view),
                "error": error,
                "flash": flash,
                "test": test or (check_view(outcome.test) if outcome and outcome.test else None),
                "refused": outcome is not None and not outcome.saved,
                "insecure": [],
                "link": link,
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    async def save_from_form(request: Request, web: WebSession, config_id: str | None) -> Response:
        form, secret = await read_form(request, "client_secret")
        record = await run_in_threadpool(service.get, config_id) if config_id is not None else None
        try:
            config = GraphConfig.from_mapping({k: form.get(k, "") for k in _FIELDS})
            outcome = await run_in_threadpool(
                lambda: service.save(
                    config,
                    actor=_actor(web),
                    config_id=config_id,
                    client_secret=secret,
                    save_anyway=form.get("save_anyway") == "yes",
                )
            )
        except ExchangeConfigInvalid as exc:
            return edit_page(request, record, form=form, error=str(exc), status_code=400)
        if not outcome.saved:
            return edit_page(
                request,
                record,
                form=form,
                outcome=outcome,
                error=REFUSED_MESSAGE,
                status_code=422,
            )
        assert outcome.record is not None
        note = "Saved" + (" despite the failed test" if outcome.forced else "")
        if outcome.secret_dropped:
            note += " (not tested: the endpoint changed, so the stored client secret was deleted)"
        elif outcome.test is None:
            note += " (not tested: no client secret yet)"
        return edit_page(request, outcome.record, outcome=outcome, flash=note)

    @router.get("/exchange/graph/new")
    def graph_new(request: Request, web: Admin) -> Response:
        return edit_page(request, None)

    @router.post("/exchange/graph/new")
    async def graph_create(request: Request, web: Admin) -> Response:
        return await save_from_form(request, web, None)

    @router.get("/exchange/graph/{config_id}")
    def graph_show(config_id: str, request: Request, web: Admin) -> Response:
        return edit_page(request, service.get(config_id))

    @router.post("/exchange/graph/{config_id}")
    async def graph_update(config_id: str, request: Request, web: Admin) -> Response:
        return await save_from_form(request, web, config_id)

    @router.post("/exchange/graph/{config_id}/test")
    def graph_test(config_id: str, request: Request, web: Admin) -> Response:
        result = service.test(config_id, actor=_actor(web))
        return edit_page(
            request,
            service.get(config_id),
            test=check_view(result),
            status_code=200 if result.ok else 422,
        )

    @router.post("/exchange/graph/{config_id}/link")
    def graph_link(config_id: str, request: Request, web: Admin) -> Response:
        issued = service.create_link(config_id, actor=_actor(web))
        services: ConnectorServices = request.app.state.connector
        return edit_page(
            request,
            service.get(config_id),
            link=link_page_view(issued, services.settings.base_url),
        )

    @router.post("/exchange/graph/{config_id}/delete")
    def graph_delete(config_id: str, request: Request, web: Admin) -> Response:
        service.delete(config_id, actor=_actor(web))
        return RedirectResponse("/exchange", status_code=303)

    # -- JSON API ---------------------------------------------------------------------

    async def api_save(request: Request, web: WebSession, config_id: str | None) -> Response:
        body, secret = await read_save_body(
            request,
            "client_secret",
            '{"config": {...}, "client_secret": optional, "save_anyway": bool}',
        )
        config = GraphConfig.from_mapping(body["config"])
        outcome = await run_in_threadpool(
            lambda: service.save(
                config,
                actor=_actor(web),
                config_id=config_id,
                client_secret=secret,
                save_anyway=body.get("save_anyway") is True,
            )
        )
        return save_answer(outcome.saved, outcome.view(), config_id)

    @router.get("/api/exchange/graph/configs")
    def api_list(web: Admin) -> JSONResponse:
        return JSONResponse({"configs": [r.public_view() for r in service.configs()]})

    @router.post("/api/exchange/graph/configs")
    async def api_create(request: Request, web: Admin) -> Response:
        return await api_save(request, web, None)

    @router.get("/api/exchange/graph/configs/{config_id}")
    def api_show(config_id: str, web: Admin) -> JSONResponse:
        return JSONResponse(service.get(config_id).public_view())

    @router.put("/api/exchange/graph/configs/{config_id}")
    async def api_update(config_id: str, request: Request, web: Admin) -> Response:
        await run_in_threadpool(service.get, config_id)
        return await api_save(request, web, config_id)

    @router.delete("/api/exchange/graph/configs/{config_id}")
    def api_delete(config_id: str, web: Admin) -> JSONResponse:
        service.delete(config_id, actor=_actor(web))
        return JSONResponse({"deleted": config_id})

    @router.post("/api/exchange/graph/configs/{config_id}/test")
    def api_test(config_id: str, web: Admin) -> JSONResponse:
        result = service.test(config_id, actor=_actor(web))
        return JSONResponse(check_view(result), 200 if result.ok else 422)

    return router
