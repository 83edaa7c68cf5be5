"""``create_app(settings)``: the cloud's FastAPI application, wired in one place."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography import x509
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hybridge import __version__
from hybridge.cloud import calist, presets
from hybridge.cloud.api import api_router
from hybridge.cloud.calendar_portal import install_calendar
from hybridge.cloud.callservice import install_callservice
from hybridge.cloud.control import install_control
from hybridge.cloud.errors import CaListError, NotOperator, OrganisationError
from hybridge.cloud.keys import load_cloud_keys
from hybridge.cloud.mtls import ConnectorAuthError
from hybridge.cloud.oauth import oauth_routers
from hybridge.cloud.portal import portal_router
from hybridge.cloud.services import CloudServices, portal_admin_dependency
from hybridge.cloud.settings import CloudSettings
from hybridge.storage.db import Database, open_database
from hybridge.web.auth import WebAuth
from hybridge.web.pages import install_error_pages, login_router, make_templates, mount_static

log = logging.getLogger("hybridge.cloud")

TEMPLATES = Path(__file__).parent / "templates"


def _seed_ca_list(services: CloudServices) -> None:
    """Publish version 1 on first start: the roots of the cloud's own certificates.

    From ``--ca-roots`` when given; otherwise each chain (server, call service) is completed
    from Mozilla's roots as packaged by certifi, which is where the root of a certificate
    from a public CA is. A chain whose root is found nowhere is named in the log.
    """
    settings = services.settings
    if settings.ca_roots is not None:
        try:
            roots = x509.load_pem_x509_certificates(settings.ca_roots.read_bytes())
        except (OSError, ValueError) as exc:
            raise CaListError(
                f"cannot read the CA roots file {str(settings.ca_roots)!r}: {exc}"
            ) from exc
    else:
        chains = [services.keys.server_chain, services.keys.callservice_chain]
        roots, missing = calist.find_roots(chains, presets.certifi_roots())
        for issuer in missing:
            log.warning(
                "no root found for issuer %r among certifi's roots; give it with --ca-roots",
                issuer,
            )
    now = settings.clock()
    with services.database.transaction() as db:
        version = calist.seed_default(db, roots, services.keys, settings.base_url, now)
    if version is not None:
        log.info("published CA list version %d: %s", version.sequence, version.change)


def create_app(settings: CloudSettings, *, database: Database | None = None) -> FastAPI:
    """The cloud app: portal, registration authority, CA list.

    Opens (and migrates) the database, loads or generates the cloud's keys, and publishes
    the default CA list on first start (see ``_seed_ca_list``).

    Raises:
        StorageError, CloudKeyError, CaListError: startup cannot proceed.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = database or open_database(settings.db_url, "cloud")
    keys = load_cloud_keys(settings)
    auth = WebAuth(database, settings.web, settings.clock)
    templates = make_templates(TEMPLATES, globals_={"role_name": "Hybridge Cloud"})
    services = CloudServices(settings, database, keys, auth, templates)
    _seed_ca_list(services)

    app = FastAPI(
        title="Hybridge Cloud",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.cloud = services
    auth.install(app)
    install_error_pages(
        app,
        templates,
        auth,
        json_prefixes=("/api/", "/oauth/token", "/portal/api/"),
        statuses={NotOperator: 403, OrganisationError: 403, ConnectorAuthError: 403},
    )
    mount_static(app)
    portal_admin = portal_admin_dependency(auth)
    app.include_router(login_router(auth, templates, home="/connectors"))
    browser, backchannel = oauth_routers(auth, portal_admin)
    app.include_router(browser)
    app.include_router(backchannel)
    app.include_router(portal_router(auth, portal_admin))
    app.include_router(api_router())
    install_control(app, services)
    install_calendar(app, services, portal_admin)
    install_callservice(app, services)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "cloud", "version": __version__})

    return app
