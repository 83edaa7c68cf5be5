"""Registration against a real cloud process: the accepting paths and their twins.

Every twin asserts the exact refusal and that the connector kept no credential (no stored
registration, no key in the vault) and no anchor (no cloud set, no sequence).
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import structlog
from connector_stack import (
    Cloud,
    ConnectorFactory,
    approve,
    expire_codes,
    form_csrf_of,
    portal_client,
    portal_login,
)

import certs
from hybridge.demo.pki import DemoPki
from hybridge.truststore import CertificateSource

pytestmark = pytest.mark.slow  # real role processes on loopback


def _register(
    cloud: Cloud,
    pki: DemoPki,
    connector,
    *,
    manage_ca: bool = True,
    email: str = "alice@acme.test",
    organisation: str = "",
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    authorize = connector.start(cloud.url, manage_ca=manage_ca, organisation=organisation)
    with portal_client(cloud.url, pki) as portal:
        portal_login(portal, email)
        return approve(portal, authorize, manage_ca=manage_ca)


def test_auto_registration_installs_the_cloud_list_and_then_uses_the_platform_store(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    page = connector.callback(params)
    assert page.status_code == 200, page.text
    assert "registered to <strong>Acme</strong>" in page.text
    registration = connector.services.credentials.current()
    assert registration is not None and registration.organisation_name == "Acme"
    anchors = connector.services.store.list_anchors()
    assert [a.anchor.source.value for a in anchors] == ["cloud"]
    assert anchors[0].info.subject == "CN=Hybridge Demo Public Root CA,O=Hybridge Demo,C=ZZ"
    trust = connector.client.get("/trust")
    assert "Hybridge Demo Public Root CA" in trust.text and "managed by the cloud" in trust.text
    # The key is in the vault, under the connector id, and nowhere in pages or the API.
    assert connector.services.credentials.secret_count() == 1
    status = connector.client.get("/api/registration", params={"check": "true"}).json()
    assert status["registered"] is True and status["organisation"]["name"] == "Acme"
    assert "PRIVATE KEY" not in str(status)
    # From now on the cloud is verified by the trust store, never by the bootstrap set.
    assert status["cloud_connection"]["ok"] is True
    # Never a secret in a page: no key, no verifier, no code.
    for path in ("/registration", "/trust", "/api/registration"):
        text = connector.client.get(path).text
        assert "PRIVATE KEY" not in text and params["code"] not in text
    with structlog.testing.capture_logs() as logs:
        health = connector.services.registration.cloud_health()
    assert health.ok
    assert not [e for e in logs if e["event"] == "truststore.bootstrap_used"]


def test_registration_exchange_uses_only_the_bootstrap_set(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    with structlog.testing.capture_logs() as logs:
        assert connector.callback(params).status_code == 200
    used = [e for e in logs if e["event"] == "truststore.bootstrap_used"]
    assert len(used) == 1 and used[0]["origin"] == str(demo_pki.bootstrap_bundle)


def test_manual_mode_installs_nothing_and_connects_after_the_upload(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector, manage_ca=False)
    page = connector.callback(params)
    assert page.status_code == 200, page.text
    root_subject = "CN=Hybridge Demo Public Root CA,O=Hybridge Demo,C=ZZ"
    assert "Manual mode: nothing was installed" in page.text and root_subject in page.text
    assert connector.services.store.list_anchors() == ()
    before = connector.client.get("/api/registration", params={"check": "true"}).json()
    assert before["cloud_connection"]["ok"] is False
    assert before["cloud_connection"]["needed_ca"] == root_subject
    # The admin uploads the CA the page named, confirms its fingerprint, and it connects.
    upload = connector.client.get("/trust/upload")
    preview = connector.client.post(
        "/trust/upload",
        files={"files": ("root.pem", demo_pki.root_ca.read_bytes(), "application/x-pem-file")},
        data={"csrf_token": form_csrf_of(upload.text)},
    )
    assert preview.status_code == 200, preview.text
    fingerprint = preview.text.split('data-fingerprint="')[1].split('"')[0]
    confirm = connector.client.post(
        "/trust/upload/confirm",
        data={
            "fingerprints": fingerprint,
            "decision": "add",
            "csrf_token": form_csrf_of(preview.text),
        },
    )
    assert confirm.status_code == 200 and "1 CA certificates added" in confirm.text
    after = connector.client.get("/api/registration", params={"check": "true"}).json()
    assert after["cloud_connection"]["ok"] is True


def test_deregistration_removes_credential_and_cloud_anchors_keeps_manual(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    assert connector.callback(_register(cloud, demo_pki, connector)).status_code == 200
    exchange_ca = certs.build("Exchange Issuing Root")
    store = connector.services.store
    store.add_manual([CertificateSource("exchange.pem", exchange_ca.pem)], actor="test")
    page = connector.client.get("/registration")
    response = connector.client.post(
        "/registration/deregister",
        data={"csrf_token": form_csrf_of(page.text)},
    )
    assert response.status_code == 200, response.text
    assert 'id="deregistered"' in response.text
    assert "The cloud was told." in response.text
    registration_id = response.text.split("Deregistered connector ")[1].split(":")[0]
    with sqlite3.connect(cloud.data_dir / "cloud.db") as conn:
        status = conn.execute(
            "SELECT status FROM connector WHERE id = ?", (registration_id,)
        ).fetchone()
    assert status == ("deregistered",)
    # The credential and the cloud set are gone; the admin's own anchor stays, in the bundle.
    assert [r.info.subject for r in store.list_anchors()] == [
        exchange_ca.certificate.subject.rfc4514_string()
    ]
    assert store.export_pem().count("BEGIN CERTIFICATE") == 1
    assert store.installed_cloud_sequence() is None
    assert connector.services.credentials.current() is None
    assert connector.services.credentials.secret_count() == 0
    # A new registration works after a deregistration (the old sequence is forgotten).
    assert connector.callback(_register(cloud, demo_pki, connector)).status_code == 200
    assert connector.services.store.installed_cloud_sequence() is not None


def test_deregistration_when_the_cloud_cannot_be_verified_still_removes_locally(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    # Manual mode, CA never uploaded: the platform store cannot verify the cloud, and the
    # bootstrap set is never used for anything but registration.
    connector = make()
    assert connector.callback(_register(cloud, demo_pki, connector, manage_ca=False)).is_success
    token = connector.client.get("/api/session").json()["csrf_token"]
    result = connector.client.post(
        "/api/registration/deregister", headers={"X-CSRF-Token": token}
    ).json()
    assert result["cloud_told"] is False
    assert "no platform anchor is installed" in result["cloud_error"]
    connector.assert_nothing_stored()


# -- rejecting twins -------------------------------------------------------------------


def test_wrong_state_is_refused_and_the_real_callback_still_works(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    forged = connector.callback({**params, "state": params["state"][:-2] + "xx"})
    assert forged.status_code == 400
    assert "the callback&#39;s state does not match this session&#39;s registration" in forged.text
    assert connector.services.credentials.current() is None
    assert connector.services.store.list_anchors() == ()
    # A forged callback cannot cancel the admin's own registration in progress.
    assert connector.callback(params).status_code == 200


def test_callback_in_another_session_is_a_state_mismatch(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    connector.client.cookies.clear()
    connector.login()
    refused = connector.callback(params)
    assert refused.status_code == 400
    assert "no registration was started in this browser session" in refused.text
    assert connector.services.credentials.current() is None
    assert connector.services.store.list_anchors() == ()


def test_replayed_code_is_refused(cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    # Someone who saw the code presents it first (without the verifier): the code is spent.
    with portal_client(cloud.url, demo_pki) as thief:
        stolen = thief.post(
            "/oauth/token",
            data={"grant_type": "authorization_code", "client_id": "hybridge-connector",
                  "code": params["code"], "redirect_uri": "https://localhost:9443/registration/callback",
                  "code_verifier": "x" * 43, "csr": "nope"},
        )  # fmt: skip
    assert stolen.status_code == 400
    refused = connector.callback(params)
    assert refused.status_code == 400
    assert "invalid_grant: authorization code was already used" in refused.text
    connector.assert_nothing_stored()


def test_wrong_pkce_verifier_is_refused(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    class SwapVerifier(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            body = request.read().decode()
            start = body.index("code_verifier=") + len("code_verifier=")
            end = body.index("&", start)
            forged = body[:start] + "A" * 64 + body[end:]
            return self.inner.handle_request(
                httpx.Request(request.method, request.url, headers={
                    "content-type": "application/x-www-form-urlencoded"}, content=forged.encode())
            )  # fmt: skip

    connector = make(wrap_transport=SwapVerifier)
    refused = connector.callback(_register(cloud, demo_pki, connector))
    assert refused.status_code == 400
    assert "invalid_grant: code_verifier does not match the code_challenge" in refused.text
    connector.assert_nothing_stored()


def test_expired_code_is_refused(cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector)
    assert expire_codes(cloud.data_dir) >= 1
    refused = connector.callback(params)
    assert refused.status_code == 400
    assert "invalid_grant: authorization code expired at" in refused.text
    connector.assert_nothing_stored()


def test_portal_user_not_logged_in_gets_the_login_page_and_no_code(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    authorize = connector.start(cloud.url)
    with portal_client(cloud.url, demo_pki) as anonymous:
        response = anonymous.get(authorize)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize")
    assert "code=" not in response.headers["location"]
    # Without an approval there is no code: a callback carrying only the state is refused.
    state = dict(httpx.URL(authorize).params)["state"]
    refused = connector.callback({"state": state})
    assert refused.status_code == 400
    assert "the callback carries no authorization code" in refused.text
    connector.assert_nothing_stored()


def test_denied_approval_is_reported(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    authorize = connector.start(cloud.url)
    state = dict(httpx.URL(authorize).params)["state"]
    refused = connector.callback({"error": "access_denied", "state": state})
    assert refused.status_code == 400
    assert "the cloud did not approve the registration: access_denied" in refused.text
    connector.assert_nothing_stored()


def test_admin_of_another_organisation_is_refused(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    params = _register(cloud, demo_pki, connector, email="bob@bravo.test", organisation="Acme")
    refused = connector.callback(params)
    assert refused.status_code == 400
    assert (
        "the registration was approved in organisation &#39;Bravo&#39;, but this connector may "
        "only join &#39;Acme&#39;" in refused.text
    )
    connector.assert_nothing_stored()


def test_ca_list_with_a_bad_signature_is_refused(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    class SwapSigningKey(httpx.BaseTransport):
        """On the path: the manifest arrives signed by a key other than the one announced."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            body = response.read()
            import json

            data = json.loads(body)
            data["list_signing_key"] = other
            return httpx.Response(response.status_code, json=data)

    connector = make(wrap_transport=SwapSigningKey)
    refused = connector.callback(_register(cloud, demo_pki, connector))
    assert refused.status_code == 400
    assert "the cloud&#39;s CA list was refused (bad_signature)" in refused.text
    connector.assert_nothing_stored()


def test_ca_list_with_an_old_sequence_is_refused(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    store = connector.services.store
    root = x509.load_pem_x509_certificate(demo_pki.root_ca.read_bytes())
    store.apply_cloud_set([root.public_bytes(Encoding.DER)], actor="test", sequence=99)
    before = store.list_anchors()
    refused = connector.callback(_register(cloud, demo_pki, connector))
    assert refused.status_code == 400
    assert "the cloud&#39;s CA list was refused (stale_sequence)" in refused.text
    assert "is not above the installed 99" in refused.text
    assert connector.services.credentials.current() is None
    assert connector.services.credentials.secret_count() == 0
    assert store.list_anchors() == before and store.installed_cloud_sequence() == 99


def test_register_form_without_csrf_token_is_refused(
    cloud: Cloud, demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    connector = make()
    forged = connector.client.post(
        "/registration/start",
        data={"cloud_url": cloud.url, "manage_ca": "yes"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "the form&#39;s security token is missing or wrong" in forged.text
    cross_site = connector.client.post(
        "/registration/start",
        data={"cloud_url": "https://evil.example", "csrf_token": "guess"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross_site.status_code == 403
    assert "request from origin &#39;https://evil.example&#39; refused" in cross_site.text
    connector.assert_nothing_stored()
