"""Templates, the login pages and the error pages every role's admin web shares.

``make_templates(role_dir)`` gives a Jinja2 environment that looks in the role's own
template directory first, then in this package's (``base.html``, ``login.html``,
``error.html``, the ``csrf_field()`` macro). ``install_error_pages`` maps every error to a
page (or JSON under the role's API prefixes) that never shows a traceback: a bug becomes
"internal error, incident <id>" and the traceback goes to the server log only.
"""

import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from hybridge.core.errors import HybridgeError
from hybridge.web.auth import CSRF_FIELD, WebAuth, safe_next
from hybridge.web.errors import CsrfRejected, LoginFailed, LoginRequired, LoginThrottled
from hybridge.web.sessions import WebSession

log = logging.getLogger("hybridge.web")

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def make_templates(*role_dirs: Path, globals_: dict[str, Any] | None = None) -> Jinja2Templates:
    """Jinja2 templates: the role's directories first, then the shared ones; autoescaped."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader([*map(str, role_dirs), str(TEMPLATES)])]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["csrf_field_name"] = CSRF_FIELD
    env.globals.update(globals_ or {})
    return Jinja2Templates(env=env)


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    web: WebSession | None = None,
    status_code: int = 200,
) -> Response:
    """Render ``name`` with the session's CSRF token and admin login in the context."""
    values: dict[str, Any] = {"web": web, "csrf_token": web.csrf_token if web else ""}
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code)


def mount_static(app: FastAPI) -> None:
    """Serve the shared stylesheet at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _wants_json(request: Request, json_prefixes: Iterable[str]) -> bool:
    return any(request.url.path.startswith(prefix) for prefix in json_prefixes)


def install_error_pages(
    app: FastAPI,
    templates: Jinja2Templates,
    auth: WebAuth,
    *,
    json_prefixes: Iterable[str] = ("/api/",),
    statuses: dict[type[HybridgeError], int] | None = None,
) -> None:
    """Map errors to pages (JSON under ``json_prefixes``) that never leak internals.

    A ``HybridgeError`` is answered 400 with its message (which never holds a secret), or
    with the status ``statuses`` gives its class (e.g. ``{NotOperator: 403}``).
    """
    status_map = dict(statuses or {})
    prefixes = tuple(json_prefixes)

    def page(request: Request, status: int, title: str, message: str) -> Response:
        if _wants_json(request, prefixes):
            response: Response = JSONResponse({"error": title, "detail": message}, status)
        else:
            web = getattr(request.state, "hybridge_web_session", None)
            response = render(
                templates,
                request,
                "error.html",
                {"title": title, "message": message, "status": status},
                web=web,
                status_code=status,
            )
        auth.apply_cookie(request, response)
        return response

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request, prefixes):
            return page(request, 401, "login required", str(exc))
        response = RedirectResponse(f"/login?next={_quote(exc.next_url)}", status_code=303)
        auth.apply_cookie(request, response)
        return response

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        log.warning("CSRF check refused %s %s", request.method, request.url.path)
        return page(request, 403, "request refused", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "not found", 405: "method not allowed", 403: "forbidden"}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return page(request, exc.status_code, titles.get(exc.status_code, "error"), message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Name the fields, never echo their values (a password field could be among them).
        fields = sorted({".".join(str(p) for p in err.get("loc", ())[1:]) for err in exc.errors()})
        return page(request, 400, "bad request", f"missing or invalid fields: {fields!r}")

    @app.exception_handler(HybridgeError)
    async def _ours(request: Request, exc: HybridgeError) -> Response:
        status = next((code for cls, code in status_map.items() if isinstance(exc, cls)), 400)
        return page(request, status, "refused", str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        incident = secrets.token_hex(6)
        log.error(
            "internal error %s on %s %s", incident, request.method, request.url.path, exc_info=exc
        )
        return page(request, 500, "internal error", f"internal error; incident {incident}")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def login_router(auth: WebAuth, templates: Jinja2Templates, *, home: str = "/") -> APIRouter:
    """``GET/POST /login`` and ``POST /logout``, CSRF-protected, throttled."""
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])

    @router.get("/login")
    def login_page(
        request: Request,
        web: Annotated[WebSession, Depends(auth.web_session)],
        next: str = home,
    ) -> Response:
        if web.authenticated:
            return RedirectResponse(safe_next(next, home), status_code=303)
        return render(templates, request, "login.html", {"next": safe_next(next, home)}, web=web)

    @router.post("/login")
    def login_submit(
        request: Request,
        login: Annotated[str, Form(max_length=320)],
        password: Annotated[str, Form(max_length=1024)],
        next: Annotated[str, Form()] = home,
    ) -> Response:
        target = safe_next(next, home)
        try:
            auth.login(request, login, password)
        except LoginThrottled as exc:
            web = auth.web_session(request)
            response = render(
                templates,
                request,
                "login.html",
                {"next": target, "error": str(exc), "login": login},
                web=web,
                status_code=429,
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except LoginFailed as exc:
            web = auth.web_session(request)
            return render(
                templates,
                request,
                "login.html",
                {"next": target, "error": str(exc), "login": login},
                web=web,
                status_code=401,
            )
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    def logout(request: Request) -> Response:
        auth.logout(request)
        return RedirectResponse("/login", status_code=303)

    return router
