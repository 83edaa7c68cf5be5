"""What the cloud's routes depend on, wired once in ``create_app`` and injected by FastAPI."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from hybridge.cloud import orgs
from hybridge.cloud.keys import CloudKeys
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.settings import CloudSettings
from hybridge.storage.db import Database
from hybridge.web.auth import WebAuth
from hybridge.web.sessions import WebSession


@dataclass(frozen=True)
class CloudServices:
    settings: CloudSettings
    database: Database
    keys: CloudKeys
    auth: WebAuth
    templates: Jinja2Templates


def get_services(request: Request) -> CloudServices:
    """The app's services (tests override this dependency, they do not monkeypatch)."""
    services: CloudServices = request.app.state.cloud
    return services


Services = Annotated[CloudServices, Depends(get_services)]


def portal_admin_dependency(auth: WebAuth):  # type: ignore[no-untyped-def]
    """A dependency giving the logged-in admin with their organisation."""

    def portal_admin(
        web: Annotated[WebSession, Depends(auth.current_admin)], services: Services
    ) -> PortalAdmin:
        assert web.admin_id is not None and web.admin_login is not None
        with services.database.transaction() as db:
            return orgs.portal_admin(db, web.admin_id, web.admin_login)

    return portal_admin
