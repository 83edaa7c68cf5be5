"""``create_app(settings)``: the connector's FastAPI application, wired in one place."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response

from hybridge import __version__
from hybridge.connector.calendar_views import install_calendar
from hybridge.connector.cloudlink import CloudLink, TransportWrapper
from hybridge.connector.control import install_control
from hybridge.connector.credentials import CredentialStore
from hybridge.connector.errors import NotRegistered
from hybridge.connector.exchange_views import install_exchange
from hybridge.connector.registration import RegistrationService
from hybridge.connector.registration_views import registration_router
from hybridge.connector.services import ConnectorServices
from hybridge.connector.settings import ConnectorSettings
from hybridge.connector.traversal_views import install_traversal
from hybridge.connector.trust_views import trust_router
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import AnchorNotFound, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.vault import Vault, configured_source
from hybridge.web.auth import WebAuth
from hybridge.web.pages import install_error_pages, login_router, make_templates, mount_static

TEMPLATES = Path(__file__).parent / "templates"


def create_app(
    settings: ConnectorSettings, *, wrap_transport: TransportWrapper | None = None
) -> FastAPI:
    """The connector app: admin login, trust pages, registration, JSON API.

    Opens (and migrates) the node database, the trust store of ``settings.data_dir`` and the
    vault (creating its master key file on first start unless another source is configured).
    ``wrap_transport`` lets tests wrap the real network transport to the cloud.

    Raises:
        StorageError, TrustStoreError, VaultError: startup cannot proceed.
    """
    data_dir = settings.data_dir
    store = open_trust_store(
        data_dir,
        bootstrap_file=settings.bootstrap_file,
        clock=settings.clock,
        database_url=settings.database_url,
    )
    database = open_database(settings.database_url or sqlite_url(data_dir / DATABASE_NAME), "node")
    vault = Vault.open(database, configured_source(data_dir), create=True, actor="connector")
    credentials = CredentialStore(database, vault)
    link = CloudLink(store, timeout=settings.cloud_timeout, wrap_transport=wrap_transport)
    registration = RegistrationService(settings, store, database, credentials, link)
    auth = WebAuth(database, settings.web, settings.clock)
    templates = make_templates(TEMPLATES, globals_={"role_name": "Hybridge Connector"})
    services = ConnectorServices(
        settings, database, store, credentials, registration, auth, templates
    )

    app = FastAPI(
        title="Hybridge Connector",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.connector = services

    auth.install(app)
    install_error_pages(
        app,
        templates,
        auth,
        json_prefixes=("/api/",),
        statuses={AnchorNotFound: 404, NotRegistered: 409},
    )
    mount_static(app)
    app.include_router(login_router(auth, templates, home="/trust"))
    app.include_router(trust_router(auth))
    app.include_router(registration_router(auth))
    install_control(app, services)
    exchange = install_exchange(app, services, vault)
    install_calendar(app, services, vault, exchange)
    install_traversal(app, services, vault)

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/trust", status_code=303)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "connector", "version": __version__})

    return app
