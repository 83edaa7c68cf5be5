"""Exchange configuration pages, their JSON API, and the Exchange admin's entry page.

Admin pages (login + session CSRF): ``/exchange`` (list), ``/exchange/new``,
``/exchange/{id}`` (edit; the password field is write-only and shows "set on <date> by
<who>"), ``POST /exchange/{id}/test``, ``POST /exchange/{id}/link``,
``POST /exchange/{id}/delete``.

API (session cookie + ``X-CSRF-Token``): ``GET/POST /api/exchange/configs``,
``GET/PUT/DELETE /api/exchange/configs/{id}``, ``POST /api/exchange/configs/{id}/test``,
``POST /api/exchange/configs/{id}/links``, ``GET /api/exchange/export``. A save whose
connection test fails answers 422 with the test and stores nothing, unless
``"save_anyway": true``.

The Exchange admin's entry page is in ``credential_entry_views``.

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.credential_entry_views import (
    credential_entry_router,
    install_access_log_redaction,
)
from hybridge.connector.exchange import ExchangeService, SaveOutcome, test_view
from hybridge.connector.exchange_config import ExchangeConfig, ExchangeRecord
from hybridge.connector.exchange_errors import (
    CredentialLinkError,
    ExchangeConfigInvalid,
    ExchangeConfigNotFound,
    ExchangeError,
    InsecureNotConfirmed,
    LinkCsrfRejected,
    LinkExpired,
    LinkNotFound,
    LinkUsed,
    LinkWrongConfiguration,
    PasswordNotSet,
)
from hybridge.connector.exchange_graph_views import graph_router
from hybridge.connector.exchange_views_common import (
    REFUSED_MESSAGE,
    link_page_view,
    read_form,
    read_save_body,
    save_answer,
)
from hybridge.connector.exchange_views_common import (
    actor as _actor,
)
from hybridge.connector.services import ConnectorServices
from hybridge.vault import Vault
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession

_STATUSES: tuple[tuple[type[ExchangeError], int], ...] = (
    (ExchangeConfigNotFound, 404),
    (LinkNotFound, 404),
    (LinkWrongConfiguration, 403),
    (LinkCsrfRejected, 403),
    (LinkUsed, 410),
    (LinkExpired, 410),
    (PasswordNotSet, 409),
    (InsecureNotConfirmed, 400),
)


def install_exchange(app: FastAPI, services: ConnectorServices, vault: Vault) -> ExchangeService:
    """Wire the Exchange service, its routes and its error pages into the connector app."""
    service = ExchangeService(services.database, vault, services.store, services.settings.clock)
    app.state.exchange = service
    install_access_log_redaction()

    async def _exchange_error(request: Request, exc: Exception) -> Response:
        status = next((code for cls, code in _STATUSES if isinstance(exc, cls)), 400)
        title = "link refused" if isinstance(exc, CredentialLinkError) else "refused"
        response: Response
        if request.url.path.startswith("/api/"):
            response = JSONResponse({"error": title, "detail": str(exc)}, status)
        else:
            web = getattr(request.state, "hybridge_web_session", None)
            response = render(
                services.templates,
                request,
                "error.html",
                {"title": title, "message": str(exc), "status": status},
                web=web,
                status_code=status,
            )
        services.auth.apply_cookie(request, response)
        return response

    app.add_exception_handler(ExchangeError, _exchange_error)
    # Before the EWS router: its /exchange/{config_id} would otherwise take /exchange/graph.
    app.include_router(graph_router(services.auth, service.graph))
    app.include_router(exchange_router(services.auth, service))
    app.include_router(credential_entry_router(service))
    return service


def _form_config(form: dict[str, str]) -> ExchangeConfig:
    endpoint = form.get("endpoint", "ews_url")
    return ExchangeConfig(
        display_name=form.get("display_name", ""),
        username=form.get("username", ""),
        test_mailbox=form.get("test_mailbox", ""),
        ews_url=form.get("ews_url") if endpoint == "ews_url" else None,
        autodiscover_email=form.get("autodiscover_email") if endpoint == "autodiscover" else None,
        redirect_hosts=tuple(form.get("redirect_hosts", "").replace(",", " ").split()),
        auth=form.get("auth", "NTLM"),
        verify_tls=form.get("verify_tls", "on") != "off",
    )


def exchange_router(auth: WebAuth, service: ExchangeService) -> APIRouter:
    """The admin's Exchange pages and API; every unsafe request passes ``auth.csrf_protect``."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    Admin = Annotated[WebSession, Depends(auth.current_admin)]

    def services_of(request: Request) -> ConnectorServices:
        services: ConnectorServices = request.app.state.connector
        return services

    def page(
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
    ) -> Response:
        services = services_of(request)
        records = service.configs()
        return render(
            services.templates,
            request,
            name,
            {"insecure": [r.config.display_name for r in records if not r.config.verify_tls]}
            | context,
            web=auth.web_session(request),
            status_code=status_code,
        )

    def edit_page(
        request: Request,
        record: ExchangeRecord | None,
        *,
        form: dict[str, str] | None = None,
        outcome: SaveOutcome | None = None,
        error: str | None = None,
        flash: str | None = None,
        test: dict[str, Any] | None = None,
        link: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        view = record.public_view() if record is not None else None
        values = form if form is not None else _form_of(view)
        return page(
            request,
            "exchange_form.html",
            {
                "title": view["display_name"] if view else "New Exchange configuration",
                "record": view,
                "f": values,
                "error": error,
                "flash": flash,
                "test": test or (test_view(outcome.test) if outcome and outcome.test else None),
                "refused": outcome is not None and not outcome.saved,
                "link": link,
            },
            status_code=status_code,
        )

    @router.get("/exchange")
    def exchange_list(request: Request, web: Admin) -> Response:
        views = [r.public_view() for r in service.configs()]
        graph = [r.public_view() for r in service.graph.configs()]
        return page(
            request,
            "exchange_list.html",
            {"title": "Exchange", "configs": views, "graph_configs": graph},
        )

    @router.get("/exchange/new")
    def exchange_new(request: Request, web: Admin) -> Response:
        return edit_page(request, None)

    async def save_from_form(request: Request, web: WebSession, config_id: str | None) -> Response:
        form, password = await read_form(request, "password")
        record = await run_in_threadpool(service.get, config_id) if config_id is not None else None
        try:
            config = _form_config(form)
            outcome = await run_in_threadpool(
                lambda: service.save(
                    config,
                    actor=_actor(web),
                    config_id=config_id,
                    password=password,
                    save_anyway=form.get("save_anyway") == "yes",
                    confirm_insecure=form.get("confirm_insecure") == "yes",
                )
            )
        except (ExchangeConfigInvalid, InsecureNotConfirmed) as exc:
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
        if outcome.password_dropped:
            note += (
                " (not tested: the endpoint changed, so the stored password was deleted and "
                "never sent there; enter it again or create a credential-entry link)"
            )
        elif outcome.test is None:
            note += " (not tested: no password yet)"
        return edit_page(request, outcome.record, outcome=outcome, flash=note)

    @router.post("/exchange/new")
    async def exchange_create(request: Request, web: Admin) -> Response:
        return await save_from_form(request, web, None)

    @router.get("/exchange/{config_id}")
    def exchange_show(config_id: str, request: Request, web: Admin) -> Response:
        return edit_page(request, service.get(config_id))

    @router.post("/exchange/{config_id}")
    async def exchange_update(config_id: str, request: Request, web: Admin) -> Response:
        return await save_from_form(request, web, config_id)

    @router.post("/exchange/{config_id}/test")
    def exchange_test(config_id: str, request: Request, web: Admin) -> Response:
        result = service.test(config_id, actor=_actor(web))
        return edit_page(
            request,
            service.get(config_id),
            test=test_view(result),
            status_code=200 if result.ok else 422,
        )

    @router.post("/exchange/{config_id}/link")
    def exchange_link(config_id: str, request: Request, web: Admin) -> Response:
        issued = service.create_link(config_id, actor=_actor(web))
        return edit_page(
            request,
            service.get(config_id),
            link=link_page_view(issued, services_of(request).settings.base_url),
        )

    @router.post("/exchange/{config_id}/delete")
    def exchange_delete(config_id: str, request: Request, web: Admin) -> Response:
        service.delete(config_id, actor=_actor(web))
        return RedirectResponse("/exchange", status_code=303)

    # -- JSON API ---------------------------------------------------------------------

    async def api_save(request: Request, web: WebSession, config_id: str | None) -> Response:
        body, password = await read_save_body(
            request,
            "password",
            '{"config": {...}, "password": optional, "save_anyway": bool, '
            '"confirm_insecure": bool}',
        )
        config = ExchangeConfig.from_mapping(body["config"])
        outcome = await run_in_threadpool(
            lambda: service.save(
                config,
                actor=_actor(web),
                config_id=config_id,
                password=password,
                save_anyway=body.get("save_anyway") is True,
                confirm_insecure=body.get("confirm_insecure") is True,
            )
        )
        return save_answer(outcome.saved, outcome.view(), config_id)

    @router.get("/api/exchange/configs")
    def api_list(web: Admin) -> JSONResponse:
        return JSONResponse({"configs": [r.public_view() for r in service.configs()]})

    @router.post("/api/exchange/configs")
    async def api_create(request: Request, web: Admin) -> Response:
        return await api_save(request, web, None)

    @router.get("/api/exchange/configs/{config_id}")
    def api_show(config_id: str, web: Admin) -> JSONResponse:
        return JSONResponse(service.get(config_id).public_view())

    @router.put("/api/exchange/configs/{config_id}")
    async def api_update(config_id: str, request: Request, web: Admin) -> Response:
        await run_in_threadpool(service.get, config_id)
        return await api_save(request, web, config_id)

    @router.delete("/api/exchange/configs/{config_id}")
    def api_delete(config_id: str, web: Admin) -> JSONResponse:
        service.delete(config_id, actor=_actor(web))
        return JSONResponse({"deleted": config_id})

    @router.post("/api/exchange/configs/{config_id}/test")
    def api_test(config_id: str, web: Admin) -> JSONResponse:
        result = service.test(config_id, actor=_actor(web))
        return JSONResponse(test_view(result), 200 if result.ok else 422)

    @router.post("/api/exchange/configs/{config_id}/links")
    def api_link(config_id: str, request: Request, web: Admin) -> JSONResponse:
        issued = service.create_link(config_id, actor=_actor(web))
        return JSONResponse(
            {
                "link_id": issued.link_id,
                "config_id": config_id,
                "url": services_of(request).settings.base_url + issued.path(),
                "expires_at": issued.expires_at.isoformat(),
            },
            201,
        )

    @router.get("/api/exchange/export")
    def api_export(web: Admin) -> JSONResponse:
        return JSONResponse(service.export())

    return router


def _form_of(view: dict[str, Any] | None) -> dict[str, str]:
    if view is None:
        return {"endpoint": "ews_url", "auth": "NTLM", "verify_tls": "on"}
    return {
        "display_name": view["display_name"],
        "endpoint": "autodiscover" if view["autodiscover_email"] else "ews_url",
        "ews_url": view["ews_url"] or "",
        "autodiscover_email": view["autodiscover_email"] or "",
        "redirect_hosts": " ".join(view["redirect_hosts"]),
        "username": view["username"],
        "auth": view["auth"],
        "verify_tls": "on" if view["tls"]["verify"] else "off",
        "test_mailbox": view["test_mailbox"],
    }
