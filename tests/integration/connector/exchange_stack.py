"""The connector app (real SQLite, real vault key file, real trust store) and the EWS
emulator over TLS on 127.0.0.1, for the Exchange configuration tests.

Test modules import the fixtures by name (``from exchange_stack import ews, exchange``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi.testclient import TestClient

from hybridge.connector.app import create_app
from hybridge.connector.exchange import ExchangeService
from hybridge.connector.services import ConnectorServices
from hybridge.connector.settings import ConnectorSettings
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
    ThrottlePolicy,
)
from hybridge.truststore import CertificateSource
from hybridge.web.accounts import create_admin

#: The impersonation password of every test: distinctive, so a byte search cannot miss it.
PASSWORD = "Zx9!never-SHOWN-imp3rsonation-pw"
SVC = "CONTOSO\\svc-hybridge"
ADMIN_PASSWORD = "connector exchange admin password"
BASE = "https://connector.test:9443"


def csrf_of(html: str) -> str:
    tokens = re.findall(r'name="csrf_token" value="([^"]*)"', html)
    assert tokens and tokens[-1], "page has no CSRF token in its form"
    return str(tokens[-1])


@dataclass
class Clock:
    """A clock the tests move (the link's 24 hours pass without sleeping)."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass
class Ews:
    emulator: EwsEmulator
    ca: trustme.CA

    @property
    def url(self) -> str:
        return self.emulator.ews_url


@dataclass
class Exchange:
    client: TestClient
    services: ConnectorServices
    service: ExchangeService
    clock: Clock
    data_dir: Path
    responses: list[str] = field(default_factory=list)

    def api_token(self) -> str:
        return str(self.client.get("/api/session").json()["csrf_token"])

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(
            method, path, json=body, headers={"X-CSRF-Token": self.api_token()}
        )
        self.responses.append(response.text)
        return response

    def page(self, path: str) -> Any:
        response = self.client.get(path)
        self.responses.append(response.text)
        return response

    def post(self, path: str, data: dict[str, str], *, token_from: str | None = None) -> Any:
        html = self.page(token_from or path).text
        response = self.client.post(path, data={**data, "csrf_token": csrf_of(html)})
        self.responses.append(response.text)
        return response


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        accounts=(
            DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False),
            DirectoryAccount(
                "expired@contoso.test",
                "expired",
                PASSWORD,
                has_mailbox=False,
                password_expired=True,
            ),
            DirectoryAccount("room1@contoso.test", "room1", "room1-pw"),
            DirectoryAccount("ceo@contoso.test", "ceo", "ceo-pw"),
            DirectoryAccount("busy@contoso.test", "busy", "busy-pw"),
        ),
        impersonation=(
            ImpersonationAssignment(
                "Hybridge", "svc-hybridge", frozenset({"room1@contoso.test", "busy@contoso.test"})
            ),
            ImpersonationAssignment("Expired", "expired"),
        ),
        throttling=(
            (
                "busy@contoso.test",
                ThrottlePolicy(after_requests=0, back_off_ms=30000, busy_responses=0),
            ),
        ),
    )


@pytest.fixture(scope="module")
def ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ews]:
    ca = trustme.CA(organization_name="Contoso Issuing CA")
    d = tmp_path_factory.mktemp("ews-tls")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    with EwsEmulator(emulator_config(), cert_file=d / "cert.pem", key_file=d / "key.pem") as em:
        yield Ews(em, ca)


def start(tmp_path: Path, ews: Ews, *, trust_ews_ca: bool = True) -> Iterator[Exchange]:
    clock = Clock()
    bootstrap = tmp_path / "bootstrap.pem"
    # Without ``trust_ews_ca`` the EWS CA is a *bootstrap* anchor only: EWS must still not be
    # trusted through it (bootstrap anchors verify the registration endpoints only).
    if trust_ews_ca:
        bootstrap.write_bytes(trustme.CA().cert_pem.bytes())
    else:
        bootstrap.write_bytes(ews.ca.cert_pem.bytes())
    settings = ConnectorSettings(
        data_dir=tmp_path / "connector", base_url=BASE, bootstrap_file=bootstrap, clock=clock
    )
    app = create_app(settings)
    services: ConnectorServices = app.state.connector
    if trust_ews_ca:
        services.store.add_manual(
            [CertificateSource("contoso-ca.pem", ews.ca.cert_pem.bytes())], actor="test"
        )
    with services.database.transaction() as db:
        create_admin(db, "admin", ADMIN_PASSWORD, clock())
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False)
    response = client.post(
        "/login",
        data={
            "login": "admin",
            "password": ADMIN_PASSWORD,
            "csrf_token": csrf_of(client.get("/login").text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    with client:
        yield Exchange(client, services, app.state.exchange, clock, tmp_path / "connector")
    services.store.close()
    services.database.dispose()


@pytest.fixture(scope="module")
def exchange_app(tmp_path_factory: pytest.TempPathFactory, ews: Ews) -> Iterator[Exchange]:
    yield from start(tmp_path_factory.mktemp("exchange-app"), ews)


@pytest.fixture
def exchange(exchange_app: Exchange) -> Exchange:
    """The module's app with no Exchange configuration, the clock at now (one app per
    module: starting one costs a migration and an argon2 login)."""
    for record in exchange_app.service.configs():
        exchange_app.service.delete(record.id, actor="test-cleanup")
    exchange_app.clock.now = dt.datetime.now(dt.UTC)
    exchange_app.responses.clear()
    return exchange_app


def config_body(ews_url: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "display_name": "Contoso",
        "ews_url": ews_url,
        "username": SVC,
        "auth": "NTLM",
        "test_mailbox": "room1@contoso.test",
    }
    config.update(overrides)
    return config
