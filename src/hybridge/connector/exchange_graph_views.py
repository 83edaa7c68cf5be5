"""Exchange Online (Microsoft Graph) configuration pages and their JSON API.

Admin pages (login + session CSRF): ``/exchange/graph/new``, ``/exchange/graph/{id}``
(edit; the client secret field is write-only and shows "set on <date> by <who>"),
``POST /exchange/graph/{id}/test``, ``POST /exchange/graph/{id}/delete``. The list is the
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
from hybridge.connector.services import ConnectorServices
from hybridge.vault import Secret
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

_MAX_FIELD = 2000
_FIELDS = ("display_name", "tenant_id", "client_id", "test_mailbox", "authority_host", "graph_url")


def _actor(web: WebSession) -> str:
    return f"web:{web.admin_login}"


async def _read_form(request: Request) -> tuple[dict[str, str], Secret | None]:
    """The form's text fields (bounded) and the client secret as a ``Secret``."""
    form = await request.form()
    fields: dict[str, str] = {}
    secret: Secret | None = None
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(value) > _MAX_FIELD:
            raise ExchangeConfigInvalid(f"form field {key!r} is not text of at most {_MAX_FIELD}")
        if key == "client_secret":
            secret = Secret.from_text(value) if value else None
        else:
            fields[key] = value
    return fields, secret


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
            },
            web=auth.web_session(request),
            status_code=status_code,
        )

    async def save_from_form(request: Request, web: WebSession, config_id: str | None) -> Response:
        form, secret = await _read_form(request)
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
                error="The connection test failed, so nothing was saved. Fix the settings, or "
                "tick “save anyway” to keep them.",
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

    @router.post("/exchange/graph/{config_id}/delete")
    def graph_delete(config_id: str, request: Request, web: Admin) -> Response:
        service.delete(config_id, actor=_actor(web))
        return RedirectResponse("/exchange", status_code=303)

    # -- JSON API ---------------------------------------------------------------------

    async def api_save(request: Request, web: WebSession, config_id: str | None) -> Response:
        try:
            body = await request.json()
        except ValueError as exc:
            raise ExchangeConfigInvalid("the request body is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            raise ExchangeConfigInvalid(
                'expected {"config": {...}, "client_secret": optional, "save_anyway": bool}'
            )
        raw = body.pop("client_secret", None)
        if raw is not None and not isinstance(raw, str):
            raise ExchangeConfigInvalid("client_secret must be a string")
        secret = Secret.from_text(raw) if raw else None
        del raw
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
        if not outcome.saved:
            return JSONResponse(
                {"error": "connection test failed; nothing saved", **outcome.view()}, 422
            )
        return JSONResponse(outcome.view(), 201 if config_id is None else 200)

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
