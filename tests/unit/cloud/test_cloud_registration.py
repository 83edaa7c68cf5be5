"""The registration authority through the real app: code + PKCE + CSR, and every refusal."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

from cloud_helpers import PASSWORD, Cloud, ConnectorSide, approve, login
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from hybridge.core.manifest import verify_manifest


def _register(cloud: Cloud, side: ConnectorSide, *, manage_ca: bool = True):
    login(cloud.client, "alice@acme.test")
    query = approve(cloud.client, side, manage_ca=manage_ca)
    assert query["state"] == side.state
    return query["code"], cloud.client.post("/oauth/token", data=side.token_form(query["code"]))


def test_full_registration_issues_a_bound_credential_and_a_signed_list(
    cloud: Cloud, side: ConnectorSide, demo_pki
) -> None:
    _, response = _register(cloud, side)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "connector_id",
        "organisation",
        "client_certificate",
        "connector_ca",
        "list_signing_key",
        "trust_mode",
        "ca_manifest",
        "cloud_ca_hint",
        "control_url",
    }
    assert body["organisation"]["name"] == "Acme"
    assert body["trust_mode"] == "auto"
    assert body["control_url"] == "wss://cloud.hybridge.test:8443/control"
    assert body["cloud_ca_hint"] == "CN=Hybridge Demo Public Root CA,O=Hybridge Demo,C=ZZ"

    cert = x509.load_pem_x509_certificate(body["client_certificate"].encode())
    ca = x509.load_pem_x509_certificate(body["connector_ca"].encode())
    assert (
        ca.public_key()
        == x509.load_pem_x509_certificate(demo_pki.connector_ca_cert.read_bytes()).public_key()
    )
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == side.key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:hybridge:connector:{body['connector_id']}"
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    signing_key = serialization.load_pem_public_key(body["list_signing_key"].encode())
    assert isinstance(signing_key, Ed25519PublicKey)
    manifest = verify_manifest(
        body["ca_manifest"], signing_key, now=cloud.clock(), audience=body["connector_id"]
    )
    root = x509.load_pem_x509_certificate(demo_pki.root_ca.read_bytes())
    assert manifest.certificates == (root.public_bytes(serialization.Encoding.DER),)
    assert manifest.sequence == 1
    assert manifest.issuer == "https://cloud.hybridge.test:8443"

    page = cloud.client.get("/connectors")
    assert side.hostname in page.text
    assert side.key_fp[:4] + " " + side.key_fp[4:8] in page.text  # grouped for reading


def test_manual_mode_gets_no_manifest_but_the_ca_hint(cloud: Cloud, side: ConnectorSide) -> None:
    _, response = _register(cloud, side, manage_ca=False)
    body = response.json()
    assert body["trust_mode"] == "manual"
    assert body["ca_manifest"] is None
    assert "Hybridge Demo Public Root CA" in body["cloud_ca_hint"]


def test_approval_page_shows_hostname_fingerprint_target_and_trust_choice(
    cloud: Cloud, side: ConnectorSide
) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get(side.authorize_url())
    assert side.hostname in page.text
    grouped = " ".join(side.key_fp[i : i + 4] for i in range(0, 64, 4))
    assert grouped in page.text
    assert "connector.acme.test:9443" in page.text
    assert 'name="manage_ca" value="yes" checked' in page.text
    manual = ConnectorSide(trust_mode="manual")
    page = cloud.client.get(manual.authorize_url())
    assert re.search(r'name="manage_ca" value="yes"\s*>', page.text)  # unchecked for manual
    assert page.headers["x-frame-options"] == "DENY"


def _error(response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    return body["error"], body["error_description"]


def test_wrong_pkce_verifier_is_invalid_grant(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    wrong = "x" * 43
    error = _error(
        cloud.client.post("/oauth/token", data=side.token_form(code, code_verifier=wrong))
    )
    assert error == ("invalid_grant", "code_verifier does not match the code_challenge")
    # The attempt consumed the code: the right verifier afterwards is a replay.
    again = _error(cloud.client.post("/oauth/token", data=side.token_form(code)))
    assert again[0] == "invalid_grant" and "already used" in again[1]


def test_replayed_code_is_refused_and_revokes_the_issued_credential(
    cloud: Cloud, side: ConnectorSide
) -> None:
    code, first = _register(cloud, side)
    assert first.status_code == 200
    error = _error(cloud.client.post("/oauth/token", data=side.token_form(code)))
    assert error == (
        "invalid_grant",
        "authorization code was already used; the credential it issued is revoked",
    )
    page = cloud.client.get("/connectors")
    assert "revoked" in page.text
    audit = cloud.client.get("/audit")
    assert "connector.revoked" in audit.text and "authorization code reused" in audit.text


def test_expired_code_is_invalid_grant(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    cloud.clock.advance(minutes=10)  # RFC 6749 §4.1.2: at most 10 minutes
    error = _error(cloud.client.post("/oauth/token", data=side.token_form(code)))
    assert error[0] == "invalid_grant" and "expired" in error[1]


def test_code_just_inside_ten_minutes_is_accepted(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    cloud.clock.advance(minutes=9, seconds=59)
    assert cloud.client.post("/oauth/token", data=side.token_form(code)).status_code == 200


def test_wrong_redirect_uri_is_invalid_grant(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    other = "https://evil.test/registration/callback"
    error = _error(
        cloud.client.post("/oauth/token", data=side.token_form(code, redirect_uri=other))
    )
    assert error == ("invalid_grant", "redirect_uri differs from the one authorized")


def test_csr_for_another_key_is_invalid_grant(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    other_key = ec.generate_private_key(ec.SECP256R1())
    csr = side.csr(key=other_key)
    error = _error(cloud.client.post("/oauth/token", data=side.token_form(code, csr=csr)))
    assert error[0] == "invalid_grant"
    assert f"does not match the approved {side.key_fp!r}" in error[1]


def test_csr_for_another_hostname_is_invalid_grant(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    csr = side.csr(cn="other.acme.test")
    error = _error(cloud.client.post("/oauth/token", data=side.token_form(code, csr=csr)))
    assert error == (
        "invalid_grant",
        "csr subject CN 'other.acme.test' is not the approved 'connector.acme.test'",
    )


def test_garbage_csr_and_unknown_code_and_grant_type(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    error = _error(cloud.client.post("/oauth/token", data=side.token_form(code, csr="nope")))
    assert error == ("invalid_request", "csr is not a PEM PKCS#10 request")
    error = _error(cloud.client.post("/oauth/token", data=side.token_form("no-such-code")))
    assert error == ("invalid_grant", "authorization code is unknown")
    error = _error(
        cloud.client.post("/oauth/token", data=side.token_form(code, grant_type="password"))
    )
    assert error[0] == "unsupported_grant_type"


def test_not_logged_in_approval_goes_to_login_then_back(cloud: Cloud, side: ConnectorSide) -> None:
    url = side.authorize_url()
    response = cloud.client.get(url, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize%3F")
    # Posting a decision without a session is refused too (no code is created).
    response = cloud.client.post(
        "/oauth/authorize", data={"request_id": "x", "decision": "approve"}, follow_redirects=False
    )
    assert response.status_code == 403  # no CSRF token bound to a session
    login_page = cloud.client.get(response.headers.get("location", "/login"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text).group(1)
    back = cloud.client.post(
        "/login",
        data={"login": "alice@acme.test", "password": PASSWORD, "csrf_token": token, "next": url},
        follow_redirects=False,
    )
    assert back.status_code == 303 and back.headers["location"] == url
    assert side.hostname in cloud.client.get(url).text


def test_org_b_admin_approves_into_org_b_only(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "bob@bravo.test")
    page = cloud.client.get(side.authorize_url())
    assert "Register a connector to Bravo?" in page.text
    code = approve(cloud.client, side)["code"]
    body = cloud.client.post("/oauth/token", data=side.token_form(code)).json()
    assert body["organisation"]["name"] == "Bravo"
    assert side.hostname in cloud.client.get("/connectors").text
    cloud.client.post("/logout", data={"csrf_token": _token(cloud)})
    login(cloud.client, "alice@acme.test")
    acme = cloud.client.get("/connectors")
    assert "Connectors of Acme" in acme.text
    assert side.hostname not in acme.text
    assert body["connector_id"] not in cloud.client.get("/audit").text


def _token(cloud: Cloud) -> str:
    page = cloud.client.get("/connectors")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_approve_without_or_with_wrong_csrf_is_refused_and_makes_no_code(
    cloud: Cloud, side: ConnectorSide
) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get(side.authorize_url())
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text).group(1)
    for extra in ({}, {"csrf_token": "forged"}):
        response = cloud.client.post(
            "/oauth/authorize",
            data={"request_id": request_id, "decision": "approve", **extra},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert "security token is missing or wrong" in response.text
    response = cloud.client.post(
        "/oauth/authorize",
        data={"request_id": request_id, "decision": "approve", "csrf_token": _token(cloud)},
        headers={"origin": "https://evil.test"},
        follow_redirects=False,
    )
    assert response.status_code == 403 and "origin" in response.text
    with cloud.services.database.transaction() as db:
        from hybridge.cloud.models import authorization_code

        assert db.query(authorization_code).count() == 0


def test_deny_redirects_with_access_denied(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get(side.authorize_url())
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text).group(1)
    response = cloud.client.post(
        "/oauth/authorize",
        data={"request_id": request_id, "decision": "deny", "csrf_token": _token(cloud)},
        follow_redirects=False,
    )
    assert response.headers["location"] == (
        f"{side.redirect_uri}?error=access_denied&state={side.state}"
    )


def test_bad_client_or_redirect_is_shown_not_redirected(cloud: Cloud, side: ConnectorSide) -> None:
    login(cloud.client, "alice@acme.test")
    for change in (
        {"client_id": "someone"},
        {"redirect_uri": "http://c.test/registration/callback"},
        {"redirect_uri": "https://c.test/elsewhere"},
    ):
        response = cloud.client.get(side.authorize_url(**change), follow_redirects=False)
        assert response.status_code == 400
        assert "location" not in response.headers


def test_plain_pkce_and_bad_fingerprint_are_sent_back_as_invalid_request(
    cloud: Cloud, side: ConnectorSide
) -> None:
    login(cloud.client, "alice@acme.test")
    for change, text in (
        ({"code_challenge_method": "plain"}, "S256"),
        ({"connector_key_fp": "abc"}, "64 hex digits"),
        ({"connector_hostname": "bad host!"}, "not a DNS name"),
    ):
        response = cloud.client.get(side.authorize_url(**change), follow_redirects=False)
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith(side.redirect_uri + "?error=invalid_request")
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [side.state]
        assert text in query["error_description"][0]


def test_no_secret_in_responses_or_logs(
    cloud: Cloud, side: ConnectorSide, demo_pki, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    _, response = _register(cloud, side)
    key_pem = side.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    secrets = [
        PASSWORD,
        side.verifier,
        key_pem.splitlines()[1],
        demo_pki.connector_ca_key.read_text().splitlines()[1],
        demo_pki.list_signing_key.read_text().splitlines()[1],
    ]
    cookie = cloud.client.cookies.get("__Host-hybridge-cloud")
    assert cookie
    pages = [response.text] + [
        cloud.client.get(p).text for p in ("/connectors", "/audit", "/ca-list")
    ]
    logs = caplog.text
    for secret in [*secrets, cookie]:
        assert secret not in logs
        for text in pages:
            assert secret not in text
