"""How a role plugs admin login, sessions and CSRF into its FastAPI app.

    auth = WebAuth(database, WebSettings(cookie_name="__Host-hybridge-cloud"), clock)
    auth.install(app)                       # cookie writer + security headers
    app.include_router(login_router(auth, templates, home="/"))
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])   # every unsafe method
    @router.get("/things")
    def things(web: WebSession = Depends(auth.current_admin)): ...

Dependencies (use with ``Depends``): ``auth.web_session`` (the browser's session, an
anonymous one created on first sight), ``auth.current_admin`` (a logged-in session, else
``LoginRequired`` which ``install_error_pages`` turns into a 303 to ``/login?next=...``),
``auth.csrf_protect`` (refuses POST/PUT/PATCH/DELETE without the session's token in the form
field ``csrf_token`` or the ``X-CSRF-Token`` header).

Modules that declare such routes must not use ``from __future__ import annotations``: the
dependencies are closures over ``auth``, and FastAPI has to see ``Depends(auth...)`` as an
object, not as a string it would look up in the module's globals.

Cookies (RFC 6265bis §4.1.3.2): the ``__Host-`` prefix forces Secure, Path=/ and no Domain,
so a sibling host cannot plant or read it; HttpOnly keeps it from scripts; SameSite=Lax
keeps it off cross-site POSTs while a top-level GET redirect (the OAuth authorize step)
still carries it. Each role has its own cookie name: cookies do not isolate by port, and the
cloud and the connector may both live on localhost.
"""

import datetime as dt
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from hybridge.storage.db import Database
from hybridge.web import sessions
from hybridge.web.accounts import AdminAccount, authenticate
from hybridge.web.clock import Clock
from hybridge.web.errors import CsrfRejected, LoginFailed, LoginRequired
from hybridge.web.sessions import WebSession
from hybridge.web.throttle import ThrottlePolicy

log = logging.getLogger("hybridge.web")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_STATE = "hybridge_web_session"
_COOKIE_ACTION = "hybridge_web_cookie"


@dataclass(frozen=True)
class WebSettings:
    """Session and login settings of one role's admin web."""

    cookie_name: str
    session_lifetime: dt.timedelta = dt.timedelta(hours=8)
    anonymous_lifetime: dt.timedelta = dt.timedelta(minutes=30)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)

    def __post_init__(self) -> None:
        if not self.cookie_name.startswith("__Host-"):
            raise ValueError(f"cookie name {self.cookie_name!r} must start with '__Host-'")


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` when it is a local path, else ``default`` (no open redirect after login)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


class WebAuth:
    """Sessions, login and CSRF for one role; see the module docstring for the wiring."""

    def __init__(self, database: Database, settings: WebSettings, clock: Clock) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock

        def web_session(request: Request) -> WebSession:
            cached: WebSession | None = getattr(request.state, _STATE, None)
            if cached is not None:
                return cached
            token = request.cookies.get(settings.cookie_name, "")
            now = clock()
            with database.transaction() as db:
                found = sessions.load_session(db, token, now) if token else None
                if found is None:
                    sessions.purge_expired(db, now)
                    found = sessions.create_session(db, now, settings.anonymous_lifetime)
                    self._set_cookie(request, found)
            setattr(request.state, _STATE, found)
            return found

        def current_admin(
            request: Request, web: Annotated[WebSession, Depends(web_session)]
        ) -> WebSession:
            if not web.authenticated:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise LoginRequired(target)
            return web

        async def csrf_protect(
            request: Request, web: Annotated[WebSession, Depends(web_session)]
        ) -> None:
            if request.method in SAFE_METHODS:
                return
            # Defence in depth (OWASP CSRF cheat sheet, "verifying origin"): a browser that
            # names a foreign Origin is refused even before the token is looked at.
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != request.url.netloc:
                raise CsrfRejected(f"request from origin {origin!r} refused")
            sent: Any = request.headers.get(CSRF_HEADER)
            if sent is None:
                form = await request.form()
                sent = form.get(CSRF_FIELD)
            # Synchronizer token bound to this session; constant-time comparison.
            if not isinstance(sent, str) or not hmac.compare_digest(
                sent.encode(), web.csrf_token.encode()
            ):
                raise CsrfRejected("the form's security token is missing or wrong; reload it")

        self.web_session: Callable[[Request], WebSession] = web_session
        self.current_admin: Callable[..., WebSession] = current_admin
        self.csrf_protect: Callable[..., Awaitable[None]] = csrf_protect

    # -- used by the login router and by roles -------------------------------------------

    @staticmethod
    def client_address(request: Request) -> str:
        """The peer address of the TCP connection (no X-Forwarded-For: not trusted here)."""
        return request.client.host if request.client else "unknown"

    def login(self, request: Request, login: str, password: str) -> AdminAccount:
        """Check the credentials and replace the browser's session by an authenticated one.

        Raises:
            LoginThrottled: the account or address is locked.
            LoginFailed: wrong login or password.
        """
        now = self.clock()
        old = self.web_session(request)
        failure: LoginFailed | None = None
        with self.database.transaction() as db:
            try:
                account = authenticate(
                    db, login, password, self.client_address(request), self.settings.throttle, now
                )
            except LoginFailed as exc:
                failure = exc  # committed below with the failure counters
            else:
                sessions.destroy_session(db, old.token)
                new = sessions.create_session(
                    db, now, self.settings.session_lifetime, account.id, old.data
                )
        if failure is not None:
            log.info("login failed for %r from %s", login[:320], self.client_address(request))
            raise failure
        log.info("login of %r from %s", account.login, self.client_address(request))
        setattr(request.state, _STATE, new)
        self._set_cookie(request, new)
        return account

    def logout(self, request: Request) -> None:
        """End the browser's session and clear its cookie."""
        web = self.web_session(request)
        with self.database.transaction() as db:
            sessions.destroy_session(db, web.token)
        setattr(request.state, _COOKIE_ACTION, ("clear", None))

    def update_data(self, request: Request, data: dict[str, Any]) -> WebSession:
        """Replace the data stored with the browser's session."""
        web = self.web_session(request)
        with self.database.transaction() as db:
            updated = sessions.update_data(db, web, data)
        setattr(request.state, _STATE, updated)
        return updated

    def _set_cookie(self, request: Request, web: WebSession) -> None:
        setattr(request.state, _COOKIE_ACTION, ("set", web))

    def apply_cookie(self, request: Request, response: Response) -> None:
        """Write the pending Set-Cookie (new session, or logout) onto ``response``."""
        action = getattr(request.state, _COOKIE_ACTION, None)
        if action is None:
            return
        kind, web = action
        if kind == "clear":
            response.delete_cookie(
                self.settings.cookie_name, path="/", secure=True, httponly=True, samesite="lax"
            )
            return
        max_age = int((web.expires_at - self.clock()).total_seconds())
        response.set_cookie(
            self.settings.cookie_name,
            web.token,
            max_age=max(0, max_age),
            path="/",
            secure=True,
            httponly=True,
            samesite="lax",
        )

    def install(self, app: FastAPI) -> None:
        """Add the middleware that writes session cookies and the security headers."""

        @app.middleware("http")
        async def _web_middleware(request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            self.apply_cookie(request, response)
            headers = response.headers
            # CSP: no inline script, no framing (the approval page must not be clickjacked).
            headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; frame-ancestors 'none'; form-action 'self' https:; "
                "base-uri 'none'",
            )
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("X-Content-Type-Options", "nosniff")
            # Codes and states travel in URLs; do not leak them to other sites via Referer.
            # "same-origin", not "no-referrer": under no-referrer browsers send `Origin: null`
            # on form POSTs (Fetch §3.1), which the CSRF origin check must refuse.
            headers.setdefault("Referrer-Policy", "same-origin")
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            if not request.url.path.startswith("/static/"):
                headers.setdefault("Cache-Control", "no-store")
            return response

    async def session_in_thread(self, request: Request) -> WebSession:
        """``web_session`` for async code (runs the database work in a worker thread)."""
        return await run_in_threadpool(self.web_session, request)
