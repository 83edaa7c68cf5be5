"""Helpers of the connector integration tests: a real cloud process, an in-process connector.

The cloud runs as ``hybridge cloud serve`` on 127.0.0.1 with the demo PKI (a real process,
real TLS); the connector is ``create_app`` behind a ``TestClient`` (its outbound HTTPS to
the cloud is real). The cloud portal is driven with httpx as a browser would, verifying
the cloud with the demo root.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from hybridge.cloud.orgs import create_org_admin
from hybridge.connector.app import create_app
from hybridge.connector.cloudlink import TransportWrapper
from hybridge.connector.demo_run import RoleProcess
from hybridge.connector.services import ConnectorServices
from hybridge.connector.settings import ConnectorSettings
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.accounts import create_admin
from hybridge.web.clock import system_clock

PASSWORD = "connector integration password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
CONNECTOR_BASE = "https://localhost:9443"


def csrf_of(html: str) -> str:
    """The first non-empty token (the cloud portal's pages; see ``form_csrf_of``)."""
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def form_csrf_of(html: str) -> str:
    """The token of the page's own form, the last one (the first is the header's logout
    form): a connector form that rendered its token empty fails here, as in a browser."""
    tokens = re.findall(r'name="csrf_token" value="([^"]*)"', html)
    assert tokens and tokens[-1], "the page's form has no CSRF token"
    return str(tokens[-1])


def add_cloud_admins(cloud_dir: Path, admins: dict[str, str]) -> None:
    """Create ``{email: org}`` admins in the cloud's database before it starts."""
    cloud_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(sqlite_url(cloud_dir / "cloud.db"), "cloud")
    try:
        with database.transaction() as db:
            for email, org in admins.items():
                create_org_admin(db, org, email, PASSWORD, system_clock())
    finally:
        database.dispose()


def expire_codes(cloud_dir: Path) -> int:
    """Make every unused authorization code of the cloud expired (as 11 minutes would)."""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(cloud_dir / "cloud.db") as conn:
        changed = conn.execute(
            "UPDATE authorization_code SET expires_at = ? WHERE used_at IS NULL", (past,)
        ).rowcount
    return int(changed)


@dataclass
class Cloud:
    """The cloud process of the package's tests."""

    role: RoleProcess
    data_dir: Path

    @property
    def url(self) -> str:
        return self.role.url


@dataclass
class Connector:
    client: TestClient
    services: ConnectorServices

    def login(self, login: str = "admin", password: str = PASSWORD) -> None:
        page = self.client.get("/login")
        response = self.client.post(
            "/login",
            data={"login": login, "password": password, "csrf_token": form_csrf_of(page.text)},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text

    def start(self, cloud_url: str, *, manage_ca: bool = True, organisation: str = "") -> str:
        """Submit the registration form; returns the authorize URL it redirects to."""
        page = self.client.get("/registration")
        assert page.status_code == 200, page.text
        data = {"cloud_url": cloud_url, "csrf_token": form_csrf_of(page.text)}
        if manage_ca:
            data["manage_ca"] = "yes"
        if organisation:
            data["organisation"] = organisation
        response = self.client.post("/registration/start", data=data, follow_redirects=False)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(cloud_url + "/oauth/authorize?")
        return location

    def callback(self, params: dict[str, str]) -> httpx.Response:
        return self.client.get("/registration/callback", params=params)

    def assert_nothing_stored(self) -> None:
        """No registration, no connector key in the vault, no anchor, no cloud sequence."""
        services = self.services
        assert services.credentials.current() is None
        assert services.credentials.secret_count() == 0
        assert services.store.list_anchors() == ()
        assert services.store.installed_cloud_sequence() is None
        assert "BEGIN CERTIFICATE" not in services.store.export_pem()


def portal_client(cloud_url: str, pki: DemoPki) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.root_ca))
    return httpx.Client(base_url=cloud_url, verify=context, timeout=30)


def portal_login(portal: httpx.Client, email: str) -> None:
    page = portal.get("/login")
    response = portal.post(
        "/login", data={"login": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303, response.text


def approve(portal: httpx.Client, authorize_url: str, *, manage_ca: bool = True) -> dict[str, str]:
    """Open the approval page and approve; returns the callback's query parameters."""
    page = portal.get(authorize_url)
    assert page.status_code == 200, page.text
    request_id = REQUEST_ID.search(page.text)
    assert request_id, page.text
    data = {
        "csrf_token": csrf_of(page.text),
        "request_id": request_id.group(1),
        "decision": "approve",
    }
    if manage_ca:
        data["manage_ca"] = "yes"
    response = portal.post("/oauth/authorize", data=data)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(CONNECTOR_BASE + "/registration/callback?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def make_connector(
    data_dir: Path, pki: DemoPki, wrap_transport: TransportWrapper | None = None
) -> Connector:
    settings = ConnectorSettings(
        data_dir=data_dir,
        base_url=CONNECTOR_BASE,
        hostname="connector.acme.test",
        bootstrap_file=pki.bootstrap_bundle,
        cloud_timeout=10.0,
    )
    app = create_app(settings, wrap_transport=wrap_transport)
    services: ConnectorServices = app.state.connector
    with services.database.transaction() as db:
        create_admin(db, "admin", PASSWORD, system_clock())
    client = TestClient(app, base_url=CONNECTOR_BASE, raise_server_exceptions=False)
    connector = Connector(client, services)
    connector.login()
    return connector


@pytest.fixture(scope="package")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    pki, _ = init_demo_pki(tmp_path_factory.mktemp("connector-pki") / "demo")
    return pki


ConnectorFactory = Callable[..., Connector]


@pytest.fixture
def make(tmp_path: Path, demo_pki: DemoPki) -> Iterator[ConnectorFactory]:
    made: list[Connector] = []

    def factory(wrap_transport: TransportWrapper | None = None) -> Connector:
        connector = make_connector(tmp_path / f"connector{len(made)}", demo_pki, wrap_transport)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        connector.client.close()
        connector.services.store.close()
        connector.services.database.dispose()
