"""Helpers of the cloud tests: an app on a real SQLite file with the demo PKI, a movable
clock, and the connector's side of registration (key pair, PKCE, CSR) with real keys."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from hybridge.cloud.app import create_app
from hybridge.cloud.orgs import create_org_admin
from hybridge.cloud.services import CloudServices
from hybridge.cloud.settings import CloudSettings
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.throttle import ThrottlePolicy

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class MovableClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    pki, _ = init_demo_pki(tmp_path_factory.mktemp("pki") / "demo")
    return pki


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@dataclass
class Cloud:
    client: TestClient
    services: CloudServices
    clock: MovableClock
    data_dir: Path
    admins: dict[str, str] = field(default_factory=dict)

    def add_admin(self, org: str, email: str, *, operator: bool = False) -> None:
        with self.services.database.transaction() as db:
            create_org_admin(db, org, email, PASSWORD, self.clock(), operator=operator)


def make_cloud(tmp_path: Path, demo_pki: DemoPki, clock: MovableClock, **extra: object) -> Cloud:
    settings = CloudSettings(
        data_dir=tmp_path / "cloud",
        base_url="https://cloud.hybridge.test:8443",
        server_cert=demo_pki.cloud_cert,
        connector_ca_cert=demo_pki.connector_ca_cert,
        connector_ca_key=demo_pki.connector_ca_key,
        list_signing_key=demo_pki.list_signing_key,
        clock=clock,
        **{"ca_roots": demo_pki.cloud_ca_roots, **extra},  # type: ignore[arg-type]
    )
    app = create_app(settings)
    client = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    return Cloud(client, app.state.cloud, clock, settings.data_dir)


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated cloud database with two organisations' admins, made once per session.

    argon2id with its production parameters costs ~0.5 s per hash here; every test copies
    this file instead of hashing the same passwords again.
    """
    path = tmp_path_factory.mktemp("seed") / "cloud.db"
    database = open_database(sqlite_url(path), "cloud")
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as db:
        create_org_admin(db, "Acme", "alice@acme.test", PASSWORD, now, operator=True)
        create_org_admin(db, "Bravo", "bob@bravo.test", PASSWORD, now)
    database.dispose()
    return path


@pytest.fixture
def cloud(
    tmp_path: Path, demo_pki: DemoPki, clock: MovableClock, seeded_database: Path
) -> Iterator[Cloud]:
    (tmp_path / "cloud").mkdir()
    shutil.copy(seeded_database, tmp_path / "cloud" / "cloud.db")
    made = make_cloud(tmp_path, demo_pki, clock, throttle=ThrottlePolicy(account_free_failures=3))
    with made.client:
        yield made
    made.services.database.dispose()


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"login": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@dataclass
class ConnectorSide:
    """What a connector holds during registration: its key, PKCE verifier and state."""

    hostname: str = "connector.acme.test"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redirect_uri: str = "https://connector.acme.test:9443/registration/callback"
    trust_mode: str = "auto"

    @property
    def key_fp(self) -> str:
        spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashes_sha256(spki)

    def authorize_url(self, **changes: str) -> str:
        params = {
            "response_type": "code",
            "client_id": "hybridge-connector",
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": create_s256_code_challenge(self.verifier),
            "code_challenge_method": "S256",
            "connector_hostname": self.hostname,
            "connector_key_fp": self.key_fp,
            "trust_mode": self.trust_mode,
        }
        params.update(changes)
        return "/oauth/authorize?" + urlencode(params)

    def csr(self, key: ec.EllipticCurvePrivateKey | None = None, cn: str | None = None) -> str:
        signer = key or self.key
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or self.hostname)]))
            .sign(signer, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def token_form(self, code: str, **changes: str) -> dict[str, str]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": "hybridge-connector",
            "code_verifier": self.verifier,
            "csr": self.csr(),
        }
        form.update(changes)
        return form


def hashes_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def approve(client: TestClient, side: ConnectorSide, *, manage_ca: bool = True) -> dict[str, str]:
    """Open the approval page and approve; returns the redirect's query parameters."""
    page = client.get(side.authorize_url())
    assert page.status_code == 200, page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id
    data = {
        "csrf_token": csrf_of(page.text),
        "request_id": request_id.group(1),
        "decision": "approve",
    }
    if manage_ca:
        data["manage_ca"] = "yes"
    response = client.post("/oauth/authorize", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(side.redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def side() -> ConnectorSide:
    return ConnectorSide()
