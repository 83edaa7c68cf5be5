"""The registration endpoints: ``/oauth/authorize`` (browser) and ``/oauth/token`` (connector).

The authorize step runs in the admin's browser with the portal session and CSRF; the token
step is a back-channel POST from the connector: it carries no cookie, so it is exempt from
CSRF and proves itself with the code, the PKCE verifier and the CSR instead.
"""

import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import errors as oauth_errors
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hybridge.cloud import registration
from hybridge.cloud.errors import OAuthError
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.registration import AuthorizeRequest, group_fingerprint
from hybridge.cloud.services import Services
from hybridge.web.auth import WebAuth
from hybridge.web.pages import render

log = logging.getLogger("hybridge.cloud")

#: Pending authorization requests kept per browser session (newest kept).
MAX_PENDING = 5
_PENDING = "oauth_pending"

# RFC 6749 §5.2 error codes, as Authlib names them; anything else is invalid_request.
_KNOWN_ERRORS = {
    cls.error
    for cls in (
        oauth_errors.InvalidRequestError,
        oauth_errors.InvalidClientError,
        oauth_errors.InvalidGrantError,
        oauth_errors.UnsupportedGrantTypeError,
        oauth_errors.UnsupportedResponseTypeError,
        oauth_errors.AccessDeniedError,
    )
}


def _redirect(redirect_uri: str, **params: str) -> Response:
    return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=303)


def oauth_routers(auth: WebAuth, portal_admin: Any) -> tuple[APIRouter, APIRouter]:
    """The browser side (CSRF-protected) and the back channel (token endpoint, no cookie)."""
    browser = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    # No session and no CSRF here on purpose: the connector's server calls it, without a
    # cookie; the code, the PKCE verifier and the CSR are its proof.
    backchannel = APIRouter()
    Admin = Annotated[PortalAdmin, Depends(portal_admin)]

    def error_page(request: Request, services: Any, exc: OAuthError) -> Response:
        # RFC 6749 §4.1.2.1: never redirect to an unverified redirect_uri; show the error.
        web = auth.web_session(request)
        return render(
            services.templates,
            request,
            "error.html",
            {"title": "registration refused", "message": exc.description, "status": 400},
            web=web,
            status_code=400,
        )

    @browser.get("/oauth/authorize")
    def authorize(request: Request, admin: Admin, services: Services) -> Response:
        params = {k: v for k, v in request.query_params.items()}
        try:
            registration.check_client(params)
        except OAuthError as exc:
            return error_page(request, services, exc)
        try:
            req = registration.parse_authorize(params)
        except OAuthError as exc:
            state = params.get("state", "")
            extra = {"state": state} if state else {}
            return _redirect(
                params["redirect_uri"], error=exc.error, error_description=exc.description, **extra
            )
        web = auth.web_session(request)
        pending = dict(web.data.get(_PENDING, {}))
        request_id = secrets.token_urlsafe(16)
        pending[request_id] = req.__dict__
        while len(pending) > MAX_PENDING:
            pending.pop(next(iter(pending)))
        auth.update_data(request, {**web.data, _PENDING: pending})
        return render(
            services.templates,
            request,
            "approve.html",
            {
                "admin": admin,
                "req": req,
                "request_id": request_id,
                "fingerprint": group_fingerprint(req.key_fp),
            },
            web=auth.web_session(request),
        )

    @browser.post("/oauth/authorize")
    def decide(
        request: Request,
        admin: Admin,
        services: Services,
        request_id: Annotated[str, Form(max_length=64)],
        decision: Annotated[str, Form(max_length=16)],
        manage_ca: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        web = auth.web_session(request)
        pending = dict(web.data.get(_PENDING, {}))
        stored = pending.pop(request_id, None)
        if stored is None:
            return error_page(
                request,
                services,
                OAuthError(
                    "invalid_request",
                    "this approval request is unknown or was already answered; "
                    "start the registration again from the connector",
                ),
            )
        auth.update_data(request, {**web.data, _PENDING: pending})
        req = AuthorizeRequest(**stored)
        if decision != "approve":
            log.info("registration of %r denied by %r", req.hostname, admin.login)
            return _redirect(req.redirect_uri, error="access_denied", state=req.state)
        trust_mode = "auto" if manage_ca == "yes" else "manual"
        now = services.settings.clock()
        with services.database.transaction() as db:
            code = registration.create_code(
                db, req, admin, trust_mode, now, services.settings.code_lifetime
            )
        log.info(
            "registration of %r approved by %r for %r",
            req.hostname,
            admin.login,
            admin.organisation.name,
        )
        return _redirect(req.redirect_uri, code=code, state=req.state)

    @backchannel.post("/oauth/token")
    async def token(request: Request, services: Services) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        now = services.settings.clock()

        def run() -> dict[str, Any] | OAuthError:
            with services.database.transaction() as db:
                return registration.exchange(db, fields, services.keys, services.settings, now)

        outcome = await run_in_threadpool(run)
        # RFC 6749 §5.1: token responses are never cached.
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if isinstance(outcome, OAuthError):
            error = outcome.error if outcome.error in _KNOWN_ERRORS else "invalid_request"
            log.info("token request refused: %s: %s", error, outcome.description)
            return JSONResponse(
                {"error": error, "error_description": outcome.description},
                status_code=401 if error == "invalid_client" else 400,
                headers=headers,
            )
        log.info("connector %s registered (%s)", outcome["connector_id"], outcome["trust_mode"])
        return JSONResponse(outcome, headers=headers)

    return browser, backchannel
