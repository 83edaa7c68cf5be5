"""Shared admin web for every role: accounts, login, sessions, CSRF, templates, errors.

How a role plugs in (the cloud does exactly this in ``hybridge.cloud.app``)::

    # migration of the role's schema:   from hybridge.web.schema import create_web_tables
    auth = WebAuth(database, WebSettings(cookie_name="__Host-hybridge-<role>"), clock)
    templates = make_templates(ROLE_TEMPLATES, globals_={"role_name": "Hybridge <Role>"})
    auth.install(app)                                   # cookies + security headers
    install_error_pages(app, templates, auth, json_prefixes=("/api/",))
    mount_static(app)                                   # /static/hybridge.css
    app.include_router(login_router(auth, templates, home="/"))
    router = APIRouter(dependencies=[Depends(auth.csrf_protect)])
    # routes: web: Annotated[WebSession, Depends(auth.current_admin)]
    # pages:  render(templates, request, "page.html", {...}, web=web)

Modules: ``auth`` (WebAuth, WebSettings, safe_next), ``pages`` (templates, login router,
error pages), ``accounts`` (create_admin, authenticate, set_password), ``passwords``
(argon2id), ``sessions`` (server-side sessions), ``throttle`` (login throttling),
``schema`` (tables), ``clock``, ``errors``.
"""
