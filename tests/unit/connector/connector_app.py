"""Helpers of the connector unit tests: the app on a real SQLite file, logged in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import certs
from hybridge.connector.app import create_app
from hybridge.connector.services import ConnectorServices
from hybridge.connector.settings import ConnectorSettings
from hybridge.web.accounts import create_admin
from hybridge.web.clock import system_clock

PASSWORD = "connector unit password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    # The last token on the page: the page's own form (the first is the header's logout form),
    # so a form that renders its token empty fails here as it would in a browser.
    tokens = re.findall(r'name="csrf_token" value="([^"]*)"', html)
    assert tokens and tokens[-1], "page has no CSRF token in its form"
    return str(tokens[-1])


@dataclass
class App:
    client: TestClient
    services: ConnectorServices

    def csrf(self, path: str = "/trust") -> str:
        return csrf_of(self.client.get(path).text)


@pytest.fixture
def bootstrap_ca() -> certs.Issued:
    return certs.build("Connector Unit Bootstrap Root")


@pytest.fixture
def app(tmp_path: Path, bootstrap_ca: certs.Issued) -> Iterator[App]:
    bootstrap = tmp_path / "bootstrap.pem"
    bootstrap.write_bytes(bootstrap_ca.pem)
    settings = ConnectorSettings(
        data_dir=tmp_path / "connector",
        base_url="https://connector.test:9443",
        bootstrap_file=bootstrap,
    )
    fastapi_app = create_app(settings)
    services: ConnectorServices = fastapi_app.state.connector
    with services.database.transaction() as db:
        create_admin(db, "admin", PASSWORD, system_clock())
    client = TestClient(
        fastapi_app, base_url="https://connector.test:9443", raise_server_exceptions=False
    )
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with client:
        yield App(client, services)
    services.store.close()
    services.database.dispose()
