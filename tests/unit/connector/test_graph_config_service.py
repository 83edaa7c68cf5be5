"""Exchange Online (Graph) configurations through the connector's API, page and CLI, each
save checked against the Graph emulator over real TLS on 127.0.0.1.

The client secret is write-only: after every step the API answers, the pages, the captured
log and the raw database file are searched for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from connector_app import App, csrf_of

from hybridge.connector.exchange_graph_config import SECRET_PURPOSE
from hybridge.testing.graph import (
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    RoleAssignment,
)
from hybridge.truststore.interfaces import CertificateSource

TENANT = "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"
CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"
SECRET = "Gr4ph~client-secret.value_0123456789abcd"
WRONG = "Gr4ph~an-expired-secret_0000000000000000"


@pytest.fixture(scope="module")
def graph_ca() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Graph Test CA")


@pytest.fixture(scope="module")
def emulator(
    graph_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphEmulator]:
    d = tmp_path_factory.mktemp("graph-emulator")
    cert = graph_ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    config = GraphTenantConfig(
        tenant_id=TENANT,
        apps=(AppRegistration(CLIENT, secrets=(SECRET,)),),
        mailboxes=(Mailbox("alice@contoso.test"), Mailbox("bob@contoso.test")),
        assignments=(
            RoleAssignment(CLIENT, CALENDARS_READWRITE),
            RoleAssignment(CLIENT, MAILBOX_SETTINGS_READ),
        ),
    )
    with GraphEmulator(config, cert_file=d / "cert.pem", key_file=d / "key.pem") as em:
        yield em


def trust(app: App, ca: trustme.CA) -> None:
    app.services.store.add_manual(
        [CertificateSource("graph-ca.pem", ca.cert_pem.bytes())], actor="test"
    )


def body(emulator: GraphEmulator, name: str = "Contoso Online", **kw: Any) -> dict[str, Any]:
    config = {
        "display_name": name,
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "test_mailbox": "alice@contoso.test",
        "authority_host": emulator.base_url,
        "graph_url": emulator.graph_url,
    }
    return {"config": config, **kw}


def api_token(app: App) -> dict[str, str]:
    return {"X-CSRF-Token": str(app.client.get("/api/session").json()["csrf_token"])}


def assert_secret_nowhere(app: App, *texts: str) -> None:
    """The secret is in no answer, page, log line, nor in clear in the database file."""
    pages = [app.client.get(p).text for p in ("/exchange", "/api/exchange/graph/configs")]
    pages.append(app.client.get("/api/exchange/export").text)
    for config in app.client.get("/api/exchange/graph/configs").json()["configs"]:
        pages.append(app.client.get(f"/exchange/graph/{config['id']}").text)
        pages.append(app.client.get(f"/api/exchange/graph/configs/{config['id']}").text)
    # Every file of the data directory (the database and its journal included).
    files = [p.read_bytes() for p in app.services.settings.data_dir.rglob("*") if p.is_file()]
    assert files
    for value in (SECRET, WRONG):
        for text in (*pages, *texts):
            assert value not in text
        assert not any(value.encode() in data for data in files)


def test_api_saves_after_a_passing_check(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA, capfd: pytest.CaptureFixture[str]
) -> None:
    trust(app, graph_ca)
    response = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=SECRET),
        headers=api_token(app),
    )
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["saved"] and not view["saved_despite_failed_test"]
    assert view["test"]["code"] == "ok"
    config = view["config"]
    assert config["kind"] == "graph" and config["tls"] == {
        "enabled": True,
        "verify": True,
        "trust": "platform",
    }
    assert config["client_secret"]["set"] and config["client_secret"]["set_by"] == "web:admin"
    assert config["last_test"]["code"] == "ok"
    page = app.client.get(f"/exchange/graph/{config['id']}").text
    assert "set on " in page and "by web:admin" in page
    # Stored in the vault under its own purpose, as the impersonation password is.
    vault = app.client.app.state.exchange.graph._vault  # type: ignore[attr-defined]
    ref = vault.find(SECRET_PURPOSE, config["id"])
    assert ref is not None and vault.get(ref).reveal_text() == SECRET
    out, err = capfd.readouterr()
    assert "graph.saved" in out + err  # the log was captured, so searching it means something
    assert_secret_nowhere(app, response.text, out, err)


def test_wrong_secret_is_refused_and_nothing_is_saved(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA, capfd: pytest.CaptureFixture[str]
) -> None:
    trust(app, graph_ca)
    response = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=WRONG),
        headers=api_token(app),
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "connection test failed; nothing saved"
    assert answer["test"]["code"] == "credentials_rejected"
    assert "AADSTS7000215" in answer["test"]["message"]
    assert "Certificates & secrets" in answer["test"]["fix"]
    assert app.client.get("/api/exchange/graph/configs").json() == {"configs": []}
    # Unless the admin insists: then it is saved, marked as such.
    forced = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=WRONG, save_anyway=True),
        headers=api_token(app),
    )
    assert forced.status_code == 201, forced.text
    assert forced.json()["saved_despite_failed_test"] is True
    assert forced.json()["config"]["last_test"]["code"] == "credentials_rejected"
    out, err = capfd.readouterr()
    assert "graph.save_refused" in out + err
    assert_secret_nowhere(app, response.text, forced.text, out, err)


def test_certificate_from_a_ca_outside_the_trust_store_is_refused(
    app: App, emulator: GraphEmulator
) -> None:
    # The trust store holds a CA, but not the one that issued the emulator's certificate.
    trust(app, trustme.CA(organization_name="Some other CA"))
    response = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=SECRET),
        headers=api_token(app),
    )
    assert response.status_code == 422, response.text
    test = response.json()["test"]
    assert test["code"] == "tls_untrusted"
    assert "trust store" in test["fix"]
    assert app.client.get("/api/exchange/graph/configs").json() == {"configs": []}


def test_no_anchor_at_all_is_refused(app: App, emulator: GraphEmulator) -> None:
    response = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=SECRET),
        headers=api_token(app),
    )
    assert response.status_code == 422, response.text
    assert response.json()["test"]["code"] == "tls_untrusted"
    assert "No CA certificate is installed" in response.json()["test"]["message"]


def test_a_moved_authority_drops_the_stored_secret(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA
) -> None:
    trust(app, graph_ca)
    created = app.client.post(
        "/api/exchange/graph/configs",
        json=body(emulator, client_secret=SECRET),
        headers=api_token(app),
    ).json()["config"]
    # Pointing the authority elsewhere without a new secret: the stored one is deleted and
    # never sent to the new host (nothing listens there; a check would fail if it tried).
    moved = body(emulator)
    moved["config"]["authority_host"] = "https://127.0.0.1:9"
    response = app.client.put(
        f"/api/exchange/graph/configs/{created['id']}", json=moved, headers=api_token(app)
    )
    assert response.status_code == 200, response.text
    assert response.json()["secret_dropped"] is True and response.json()["test"] is None
    assert response.json()["config"]["client_secret"] == {"set": False}


def test_the_page_form_saves_refuses_and_offers_save_anyway(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA
) -> None:
    trust(app, graph_ca)
    form = body(emulator)["config"] | {"client_secret": WRONG}
    page = app.client.get("/exchange/graph/new")
    assert page.status_code == 200 and 'name="client_secret"' in page.text
    refused = app.client.post("/exchange/graph/new", data=form | {"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 422
    assert 'data-code="credentials_rejected"' in refused.text and 'id="save-anyway"' in refused.text
    assert WRONG not in refused.text
    # Without the form's CSRF token nothing is done.
    assert app.client.post("/exchange/graph/new", data=form).status_code == 403
    saved = app.client.post(
        "/exchange/graph/new",
        data=form | {"client_secret": SECRET, "csrf_token": csrf_of(refused.text)},
    )
    assert saved.status_code == 200, saved.text
    assert 'data-code="ok"' in saved.text and 'id="secret-status"' in saved.text
    listing = app.client.get("/exchange").text
    assert 'id="graph-configs"' in listing and "Contoso Online" in listing
    assert_secret_nowhere(app, saved.text)


def test_cli_set_refuses_a_wrong_secret_then_saves(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA, tmp_path: Path
) -> None:
    trust(app, graph_ca)
    data_dir = str(app.services.settings.data_dir)
    args = [
        sys.executable, "-m", "hybridge", "connector", "calendar", "graph", "set",
        "--data-dir", data_dir, "--name", "CLI tenant", "--tenant-id", TENANT,
        "--client-id", CLIENT, "--test-mailbox", "alice@contoso.test",
        "--authority-host", emulator.base_url, "--graph-url", emulator.graph_url,
        "--secret-stdin",
    ]  # fmt: skip
    env = {**os.environ, "HYBRIDGE_BOOTSTRAP_CA_FILE": str(tmp_path / "bootstrap.pem")}

    def run(secret: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args, *extra],
            input=secret + "\n",
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    refused = run(WRONG)
    assert refused.returncode == 1, refused.stderr
    assert "connection test: credentials_rejected" in refused.stdout
    assert "not saved" in refused.stdout
    saved = run(SECRET)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "connection test: ok" in saved.stdout and "saved " in saved.stdout
    listed = app.client.get("/api/exchange/graph/configs").json()["configs"]
    assert [c["display_name"] for c in listed] == ["CLI tenant"]
    assert listed[0]["client_secret"]["set_by"].startswith("cli:")
    for result in (refused, saved):
        assert SECRET not in result.stdout + result.stderr
        assert WRONG not in result.stdout + result.stderr


def test_the_page_creates_a_credential_entry_link(
    app: App, emulator: GraphEmulator, graph_ca: trustme.CA
) -> None:
    trust(app, graph_ca)
    created = app.client.post(
        "/api/exchange/graph/configs", json=body(emulator), headers=api_token(app)
    )
    assert created.status_code == 201, created.text
    config_id = created.json()["config"]["id"]
    page = app.client.get(f"/exchange/graph/{config_id}").text
    assert f'action="/exchange/graph/{config_id}/link"' in page
    # Without the form's CSRF token no link is made.
    assert app.client.post(f"/exchange/graph/{config_id}/link").status_code == 403
    issued = app.client.post(
        f"/exchange/graph/{config_id}/link", data={"csrf_token": csrf_of(page)}
    )
    assert issued.status_code == 200, issued.text
    match = re.search(r'id="link-url">([^<]+)<', issued.text)
    assert match is not None
    prefix = f"https://connector.test:9443/credential-entry/graph/{config_id}/"
    assert match.group(1).startswith(prefix)
    # The link works: it opens the client-secret entry page for this configuration.
    entry = app.client.get(match.group(1).removeprefix("https://connector.test:9443"))
    assert entry.status_code == 200 and 'name="client_secret"' in entry.text
    assert "Contoso Online" in entry.text


def test_the_page_refuses_a_link_for_an_unknown_configuration(app: App) -> None:
    page = app.client.get("/exchange/graph/new").text
    missing = app.client.post(
        f"/exchange/graph/{'f' * 32}/link", data={"csrf_token": csrf_of(page)}
    )
    assert missing.status_code == 404
    # The error page quotes the id (HTML-escaped).
    assert f"no Exchange Online configuration with id &#39;{'f' * 32}&#39;" in missing.text
