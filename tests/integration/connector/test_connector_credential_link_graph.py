"""The one-time credential-entry link for Exchange Online: the Microsoft 365 admin enters the
application's client secret through it — once, within 24 hours, for one Graph
configuration, with a CSRF token bound to the link — and the secret is checked against the
Graph emulator (real TLS on 127.0.0.1) before anything is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import trustme
from exchange_stack import BASE, Exchange, csrf_of, ews, exchange, exchange_app
from fastapi.testclient import TestClient

from hybridge.connector.credential_link import NONCE_COOKIE
from hybridge.testing.graph import (
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    RoleAssignment,
)
from hybridge.truststore import CertificateSource
from hybridge.vault import Secret

__all__ = ["ews", "exchange", "exchange_app"]

TENANT = "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"
CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"
OLD = "Gr4ph~the-expired-secret_0123456789abcdef"
NEW = "Gr4ph~the-new-secret.value_9876543210zyxw"
WRONG = "Gr4ph~never-issued-secret_00000000000000000"


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GraphEmulator, bytes]]:
    ca = trustme.CA(organization_name="Contoso Online Test CA")
    d = tmp_path_factory.mktemp("graph-link")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    config = GraphTenantConfig(
        tenant_id=TENANT,
        apps=(AppRegistration(CLIENT, secrets=(NEW,)),),
        mailboxes=(Mailbox("alice@contoso.test"),),
        assignments=(
            RoleAssignment(CLIENT, CALENDARS_READWRITE),
            RoleAssignment(CLIENT, MAILBOX_SETTINGS_READ),
        ),
    )
    with GraphEmulator(config, cert_file=d / "cert.pem", key_file=d / "key.pem") as em:
        yield em, ca.cert_pem.bytes()


@pytest.fixture
def graph(exchange: Exchange, tenant: tuple[GraphEmulator, bytes]) -> Exchange:
    """The module's app with no Graph configuration and the emulator's CA trusted."""
    for record in exchange.service.graph.configs():
        exchange.service.graph.delete(record.id, actor="test-cleanup")
    exchange.services.store.add_manual([CertificateSource("graph-ca.pem", tenant[1])], actor="test")
    return exchange


def _config(app: Exchange, em: GraphEmulator, name: str = "Contoso Online") -> str:
    """A configuration saved with the old (now expired) secret, unchecked."""
    body = {
        "config": {
            "display_name": name,
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "test_mailbox": "alice@contoso.test",
            "authority_host": em.base_url,
            "graph_url": em.graph_url,
        },
        "client_secret": OLD,
        "save_anyway": True,
    }
    response = app.api("POST", "/api/exchange/graph/configs", body)
    assert response.status_code == 201, response.text
    return str(response.json()["config"]["id"])


def _link(app: Exchange, config_id: str) -> str:
    response = app.api("POST", f"/api/exchange/graph/configs/{config_id}/links")
    assert response.status_code == 201, response.text
    assert response.json()["url"].startswith(f"{BASE}/credential-entry/graph/{config_id}/")
    return urlsplit(response.json()["url"]).path


def _browser(app: Exchange) -> TestClient:
    """The Microsoft 365 admin's browser: no connector login, its own cookies."""
    return TestClient(app.client.app, base_url=BASE, raise_server_exceptions=False)


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', text)
    assert found, "the entry page has no link-bound CSRF token"
    return found.group(1)


def _enter(browser: TestClient, path: str, secret: str = NEW, **extra: str) -> httpx.Response:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    return browser.post(
        path, data={"client_secret": secret, "csrf_token": _csrf(page.text), **extra}
    )


def _stored(app: Exchange, config_id: str) -> Secret | None:
    return app.service.graph.stored_secret(config_id)


def _audit(app: Exchange, action: str) -> list[sa.Row[tuple[str, str]]]:
    with app.services.database.transaction() as db:
        return list(
            db.execute(
                sa.text("SELECT actor, detail FROM audit_log WHERE action = :a ORDER BY id"),
                {"a": action},
            ).all()
        )


def test_admin_enters_the_new_client_secret_once(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    config_id = _config(graph, tenant[0])
    path = _link(graph, config_id)
    browser = _browser(graph)
    page = browser.get(path)
    # Which connector, configuration, app and authority the secret is for.
    assert "connector.test" in page.text and 'id="config-name">Contoso Online<' in page.text
    assert CLIENT in page.text and tenant[0].base_url in page.text
    assert "created by <strong>web:admin</strong>" in page.text
    done = _enter(browser, path)
    assert done.status_code == 200, done.text
    text = done.text
    assert 'id="stored"' in text and 'data-code="ok"' in text and NEW not in text
    assert _stored(graph, config_id) == Secret.from_text(NEW)
    view = graph.api("GET", f"/api/exchange/graph/configs/{config_id}").json()
    assert view["client_secret"]["version"] == 2
    assert view["client_secret"]["set_by"].startswith("exchange-online-admin via link")
    # Used once: the link stops working, for reading and for writing.
    again = browser.get(path)
    assert again.status_code == 410 and "already used" in again.text
    replay = browser.post(path, data={"client_secret": WRONG, "csrf_token": "0" * 64})
    assert replay.status_code == 410 and "already used" in replay.text
    assert _stored(graph, config_id) == Secret.from_text(NEW)
    (created,) = _audit(graph, "exchange.graph_link.create")[-1:]
    assert created.actor == "web:admin" and f"config={config_id}" in created.detail
    (used,) = _audit(graph, "exchange.graph_link.use")[-1:]
    assert used.actor.startswith("link:") and f"username=app {CLIENT}" in used.detail
    for row in (created, used):
        assert NEW not in row.detail
    # The EWS links' table knows nothing of it, and the token is stored only hashed.
    token = path.rsplit("/", 1)[1]
    with graph.services.database.transaction() as db:
        rows = repr(db.execute(sa.text("SELECT * FROM graph_credential_links")).all())
        ews_rows = db.execute(sa.text("SELECT count(*) FROM exchange_credential_links")).scalar()
    assert token not in rows and hashlib.sha256(token.encode()).hexdigest() in rows
    assert NEW not in rows and ews_rows == 0


def test_a_refused_secret_stores_nothing_and_keeps_the_link(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    config_id = _config(graph, tenant[0])
    path = _link(graph, config_id)
    browser = _browser(graph)
    refused = _enter(browser, path, WRONG)
    assert refused.status_code == 422
    text = refused.text
    assert 'data-code="credentials_rejected"' in text and "AADSTS7000215" in text
    assert WRONG not in text
    assert _stored(graph, config_id) == Secret.from_text(OLD)
    uses = [
        r for r in _audit(graph, "exchange.graph_link.use") if f"config={config_id}" in r.detail
    ]
    assert uses == []  # the link was not burned
    # The same link, the right secret: stored.
    assert _enter(browser, path).status_code == 200
    assert _stored(graph, config_id) == Secret.from_text(NEW)


def test_graph_link_expires_after_24_hours(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    config_id = _config(graph, tenant[0])
    path = _link(graph, config_id)
    browser = _browser(graph)
    csrf = _csrf(browser.get(path).text)
    graph.clock.advance(dt.timedelta(hours=24))
    assert browser.get(path).status_code == 410
    late = browser.post(path, data={"client_secret": NEW, "csrf_token": csrf})
    assert late.status_code == 410 and "expired on" in late.text
    assert _stored(graph, config_id) == Secret.from_text(OLD)


def test_graph_link_is_scoped_to_one_configuration(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    first = _config(graph, tenant[0], "Contoso A")
    second = _config(graph, tenant[0], "Contoso B")
    path = _link(graph, first)
    elsewhere = path.replace(first, second)
    browser = _browser(graph)
    assert browser.get(elsewhere).status_code == 403
    csrf = _csrf(browser.get(path).text)
    response = browser.post(elsewhere, data={"client_secret": NEW, "csrf_token": csrf})
    assert response.status_code == 403 and "another Exchange configuration" in response.text
    assert _stored(graph, second) == Secret.from_text(OLD)
    # A Graph link does not open the EWS entry page, nor an EWS link the Graph one.
    ews_path = path.replace("/credential-entry/graph/", "/credential-entry/")
    refused = browser.get(ews_path)
    assert refused.status_code == 404 and "not valid" in refused.text
    # The refusals did not spend the link.
    assert _enter(browser, path).status_code == 200
    assert _stored(graph, first) == Secret.from_text(NEW)


def test_graph_link_csrf_is_bound_to_the_link_and_the_browser(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    config_id = _config(graph, tenant[0])
    other_id = _config(graph, tenant[0], "Other")
    path, other_path = _link(graph, config_id), _link(graph, other_id)
    browser = _browser(graph)
    good = _csrf(browser.get(path).text)
    other_links_token = _csrf(browser.get(other_path).text)
    missing = browser.post(path, data={"client_secret": NEW})
    assert missing.status_code == 403 and "missing" in missing.text
    wrong = browser.post(path, data={"client_secret": NEW, "csrf_token": other_links_token})
    assert wrong.status_code == 403 and "security token is wrong" in wrong.text
    forged = _browser(graph).post(path, data={"client_secret": NEW, "csrf_token": good})
    assert forged.status_code == 403 and "missing" in forged.text
    foreign = browser.post(
        path,
        data={"client_secret": NEW, "csrf_token": good},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert "'https://evil.example' refused" in html.unescape(foreign.text)
    assert _stored(graph, config_id) == Secret.from_text(OLD)
    ok = browser.post(path, data={"client_secret": NEW, "csrf_token": good})
    assert ok.status_code == 200
    assert browser.cookies.get(NONCE_COOKIE) is None


def test_creating_a_graph_link_needs_the_admin_and_a_known_configuration(
    graph: Exchange, tenant: tuple[GraphEmulator, bytes]
) -> None:
    config_id = _config(graph, tenant[0])
    stranger = _browser(graph)
    anonymous = stranger.post(f"/api/exchange/graph/configs/{config_id}/links")
    # Refused as the EWS links' endpoint refuses it (CSRF first, then the login).
    ews_anonymous = stranger.post(f"/api/exchange/configs/{config_id}/links")
    assert anonymous.status_code == ews_anonymous.status_code == 403
    assert "security token" in anonymous.text
    # With its own (anonymous) session's CSRF token, the stranger still needs the login.
    token = csrf_of(stranger.get("/login").text)
    not_logged_in = stranger.post(
        f"/api/exchange/graph/configs/{config_id}/links", headers={"X-CSRF-Token": token}
    )
    assert not_logged_in.status_code == 401 and "login required" in not_logged_in.text
    no_csrf = graph.client.post(f"/api/exchange/graph/configs/{config_id}/links")
    assert no_csrf.status_code == 403 and "security token" in no_csrf.text
    unknown = graph.api("POST", "/api/exchange/graph/configs/" + "f" * 32 + "/links")
    assert unknown.status_code == 404
    # A new link revokes the open one.
    old, new = _link(graph, config_id), _link(graph, config_id)
    assert stranger.get(old).status_code == 404
    assert _enter(stranger, new).status_code == 200
