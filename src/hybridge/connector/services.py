"""What the connector's routes depend on, wired once in ``create_app``, injected by FastAPI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from hybridge.connector.credentials import CredentialStore
from hybridge.connector.registration import RegistrationService
from hybridge.connector.settings import ConnectorSettings
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore
from hybridge.web.auth import WebAuth


@dataclass(frozen=True)
class ConnectorServices:
    """The connector's services: the same ``TrustStore`` the trust CLI uses, and the rest."""

    settings: ConnectorSettings
    database: Database
    store: TrustStore
    credentials: CredentialStore
    registration: RegistrationService
    auth: WebAuth
    templates: Jinja2Templates


def get_services(request: Request) -> ConnectorServices:
    """The app's services (tests override this dependency, they do not monkeypatch)."""
    services: ConnectorServices = request.app.state.connector
    return services


Services = Annotated[ConnectorServices, Depends(get_services)]
