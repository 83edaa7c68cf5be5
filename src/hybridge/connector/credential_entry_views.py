"""The Exchange admin's credential-entry page, reached through a one-time link.

``GET/POST /credential-entry/{config_id}/{token}``: not behind the connector admin login;
the form's CSRF token is bound to the link and to a browser nonce cookie (see
``credential_link``). The page shows which connector and which configuration the link is
for; after one successful submission the link stops working.

``GET/POST /credential-entry/graph/{config_id}/{token}``: the same for an Exchange Online
(Graph) configuration's client secret, created by the connector admin with
``POST /api/exchange/graph/configs/{config_id}/links`` (admin login and session CSRF).

No ``from __future__ import annotations`` here: see ``hybridge.web.auth``.
"""

import logging
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.connector.credential_link import (
    GRAPH_LINK_PATH,
    LINK_PATH,
    NONCE_COOKIE,
    enter_graph_secret,
)
from hybridge.connector.exchange import ExchangeService, test_view
from hybridge.connector.exchange_errors import ExchangeConfigInvalid, LinkCsrfRejected
from hybridge.connector.exchange_graph import check_view
from hybridge.connector.services import ConnectorServices
from hybridge.vault import Secret
from hybridge.web.pages import render
from hybridge.web.sessions import WebSession


class _RedactLinkTokens(logging.Filter):
    """Access logs print request paths; a link's path holds its token (a bearer credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(LINK_PATH in str(a) for a in record.args):
            record.args = tuple(_redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact_path(value: str) -> str:
    if LINK_PATH + "/" not in value:
        return value
    head, _, tail = value.partition(LINK_PATH + "/")
    kind = ""
    if tail.startswith("graph/"):
        kind, tail = "graph/", tail[len("graph/") :]
    config_id, _, _rest = tail.partition("/")
    return f"{head}{LINK_PATH}/{kind}{config_id}/<token>"


def install_access_log_redaction() -> None:
    """Add the token-redacting filter to uvicorn's access logger (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactLinkTokens) for f in access.filters):
        access.addFilter(_RedactLinkTokens())


async def _admin(request: Request) -> WebSession:
    """The connector admin's session, checked as ``exchange_views`` checks it (same order):
    an unsafe request passes the session's CSRF check (else ``CsrfRejected``), then the
    session must be logged in (else ``LoginRequired``)."""
    services: ConnectorServices = request.app.state.connector
    auth = services.auth
    web = auth.web_session(request)
    await auth.csrf_protect(request, web)
    return auth.current_admin(request, web)


Admin = Annotated[WebSession, Depends(_admin)]


def _set_nonce(response: Response, nonce: str) -> None:
    # RFC 6265bis §4.1.3.2 (__Host-: Secure, Path=/, no Domain); SameSite=Strict: the
    # cookie never rides on a cross-site request, so a forged POST lacks the nonce.
    response.set_cookie(
        NONCE_COOKIE, nonce, path="/", secure=True, httponly=True, samesite="strict"
    )


def _refuse_foreign_origin(request: Request) -> None:
    # OWASP CSRF cheat sheet, "verifying origin": a foreign Origin is refused outright.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise LinkCsrfRejected(f"request from origin {origin!r} refused")


def credential_entry_router(service: ExchangeService) -> APIRouter:
    """The Exchange admin's page: not behind the admin login; its CSRF token is link-bound."""
    router = APIRouter()

    def entry_page(
        request: Request,
        config_id: str,
        token: str,
        nonce: str,
        *,
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        link = service.links.open(config_id, token)
        services: ConnectorServices = request.app.state.connector
        record = service.get(config_id)
        registration = services.registration.current()
        response = render(
            services.templates,
            request,
            "exchange_entry.html",
            {
                "title": "Enter the Exchange impersonation account",
                "connector_hostname": services.settings.connector_hostname,
                "registration": None if registration is None else registration.public_view(),
                "config": record.public_view(),
                "expires_at": link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                "created_by": link.created_by,
                "action": request.url.path,
                "entry_csrf": link.csrf_token(nonce),
                "error": error,
            },
            status_code=status_code,
        )
        _set_nonce(response, nonce)
        return response

    @router.get(LINK_PATH + "/{config_id}/{token}")
    def entry_form(config_id: str, token: str, request: Request) -> Response:
        nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_urlsafe(32)
        return entry_page(request, config_id, token, nonce)

    @router.post(LINK_PATH + "/{config_id}/{token}")
    async def entry_submit(config_id: str, token: str, request: Request) -> Response:
        _refuse_foreign_origin(request)
        form = await request.form()
        username = form.get("username")
        raw = form.get("password")
        sent = form.get("csrf_token")
        if not isinstance(username, str) or not isinstance(raw, str) or not raw:
            raise ExchangeConfigInvalid("enter the impersonation account's username and password")
        password = Secret.from_text(raw)
        del raw
        nonce = request.cookies.get(NONCE_COOKIE)
        client = request.client.host if request.client else "unknown"
        record = await run_in_threadpool(
            lambda: service.enter_credentials(
                config_id,
                token,
                username=username,
                password=password,
                csrf_nonce=nonce,
                csrf_token=sent if isinstance(sent, str) else None,
                used_from=client,
            )
        )
        result = await run_in_threadpool(
            lambda: service.test(config_id, actor=f"link-entry:{record.config.username}")
        )
        services: ConnectorServices = request.app.state.connector
        response = render(
            services.templates,
            request,
            "exchange_entry_done.html",
            {
                "title": "Credentials stored",
                "config": record.public_view(),
                "connector_hostname": services.settings.connector_hostname,
                "test": test_view(result),
            },
        )
        response.delete_cookie(NONCE_COOKIE, path="/", secure=True, httponly=True)
        return response

    # -- Exchange Online (Graph): the application's client secret ------------------------

    graph = service.graph
    graph_links = service.links.for_graph()

    def graph_entry_page(
        request: Request,
        config_id: str,
        token: str,
        nonce: str,
        *,
        test: dict[str, object] | None = None,
        status_code: int = 200,
    ) -> Response:
        link = graph_links.open(config_id, token)
        services: ConnectorServices = request.app.state.connector
        registration = services.registration.current()
        response = render(
            services.templates,
            request,
            "graph_entry.html",
            {
                "title": "Enter the application's client secret",
                "connector_hostname": services.settings.connector_hostname,
                "registration": None if registration is None else registration.public_view(),
                "config": graph.get(config_id).public_view(),
                "expires_at": link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                "created_by": link.created_by,
                "action": request.url.path,
                "entry_csrf": link.csrf_token(nonce),
                "test": test,
                "error": None,
            },
            status_code=status_code,
        )
        _set_nonce(response, nonce)
        return response

    @router.post("/api/exchange/graph/configs/{config_id}/links")
    def api_graph_link(config_id: str, request: Request, web: Admin) -> JSONResponse:
        graph.get(config_id)  # ExchangeConfigNotFound before anything is stored
        issued = graph_links.create(config_id, actor=f"web:{web.admin_login}")
        services: ConnectorServices = request.app.state.connector
        return JSONResponse(
            {
                "link_id": issued.link_id,
                "config_id": config_id,
                "url": services.settings.base_url + issued.path(),
                "expires_at": issued.expires_at.isoformat(),
            },
            201,
        )

    @router.get(GRAPH_LINK_PATH + "/{config_id}/{token}")
    def graph_entry_form(config_id: str, token: str, request: Request) -> Response:
        nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_urlsafe(32)
        return graph_entry_page(request, config_id, token, nonce)

    @router.post(GRAPH_LINK_PATH + "/{config_id}/{token}")
    async def graph_entry_submit(config_id: str, token: str, request: Request) -> Response:
        _refuse_foreign_origin(request)
        form = await request.form()
        raw = form.get("client_secret")
        sent = form.get("csrf_token")
        if not isinstance(raw, str) or not raw:
            raise ExchangeConfigInvalid("enter the client secret's value")
        secret = Secret.from_text(raw)
        del raw
        nonce = request.cookies.get(NONCE_COOKIE)
        client = request.client.host if request.client else "unknown"
        outcome = await run_in_threadpool(
            lambda: enter_graph_secret(
                graph,
                graph_links,
                config_id,
                token,
                secret=secret,
                csrf_nonce=nonce,
                csrf_token=sent if isinstance(sent, str) else None,
                used_from=client,
            )
        )
        if not outcome.stored:
            # Refused by Entra ID or Graph: nothing stored, the link still works.
            assert nonce is not None  # check_csrf passed, so the cookie was there
            return await run_in_threadpool(
                lambda: graph_entry_page(
                    request, config_id, token, nonce, test=check_view(outcome.test), status_code=422
                )
            )
        services: ConnectorServices = request.app.state.connector
        response = render(
            services.templates,
            request,
            "graph_entry_done.html",
            {
                "title": "Client secret stored",
                "config": outcome.record.public_view(),
                "connector_hostname": services.settings.connector_hostname,
                "test": check_view(outcome.test),
            },
        )
        response.delete_cookie(NONCE_COOKIE, path="/", secure=True, httponly=True)
        return response

    return router
