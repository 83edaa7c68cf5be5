"""Portal pages: the CA list (upload, retire, preset, versions), operators, CSRF, audit."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import sqlalchemy as sa
import trustme
from cloud_helpers import Cloud, csrf_of, login
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hybridge.cloud.models import ca_list_version
from hybridge.core.manifest import ManifestBadSignature, read_unverified, verify_manifest


def _versions(cloud: Cloud) -> list[int]:
    with cloud.services.database.transaction() as db:
        return list(db.execute(sa.select(ca_list_version.c.sequence)).scalars())


def _upload(cloud: Cloud, pem: bytes, token: str | None = None, **kw):
    data = {"pem": pem.decode()}
    if token is not None:
        data["csrf_token"] = token
    return cloud.client.post("/ca-list/upload", data=data, **kw)


def test_default_list_is_the_roots_of_the_cloud_certificates(cloud: Cloud, demo_pki) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get("/ca-list")
    root = x509.load_pem_x509_certificate(demo_pki.root_ca.read_bytes())
    assert "Hybridge Demo Public Root CA" in page.text
    assert root.fingerprint(hashes.SHA256()).hex() in page.text
    assert _versions(cloud) == [1]


def test_upload_makes_a_new_signed_version_and_retire_another(cloud: Cloud, demo_pki) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get("/ca-list")
    new_ca = trustme.CA(organization_name="Uploaded Test CA")
    response = _upload(cloud, new_ca.cert_pem.bytes(), csrf_of(page.text))
    assert response.status_code == 200, response.text
    assert "Published version 2" in response.text
    assert _versions(cloud) == [1, 2]
    with cloud.services.database.transaction() as db:
        manifest = db.execute(
            sa.select(ca_list_version.c.manifest).where(ca_list_version.c.sequence == 2)
        ).scalar_one()
    public = cloud.services.keys.list_signing_key.public_key()
    got = verify_manifest(manifest, public, now=cloud.clock(), installed_sequence=1)
    assert len(got.certificates) == 2 and got.audience is None

    fp = new_ca._certificate.fingerprint(hashes.SHA256()).hex()
    response = cloud.client.post(
        "/ca-list/retire", data={"fingerprint": fp, "csrf_token": csrf_of(response.text)}
    )
    assert "Published version 3: retired" in response.text
    assert _versions(cloud) == [1, 2, 3]
    audit = cloud.client.get("/audit").text
    assert "ca_list.published" in audit and fp in audit


def test_upload_without_or_with_wrong_csrf_changes_nothing(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    pem = trustme.CA().cert_pem.bytes()
    for token in (None, "wrong-token"):
        response = _upload(cloud, pem, token)
        assert response.status_code == 403
        assert "security token is missing or wrong" in response.text
    assert _versions(cloud) == [1]


def test_csrf_token_of_another_session_is_refused(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    other_token = csrf_of(cloud.client.get("/ca-list").text)
    cloud.client.cookies.clear()
    login(cloud.client, "alice@acme.test")  # a new session, a new token
    response = _upload(cloud, trustme.CA().cert_pem.bytes(), other_token)
    assert response.status_code == 403
    assert _versions(cloud) == [1]


def test_non_operator_admin_cannot_change_the_list(cloud: Cloud) -> None:
    login(cloud.client, "bob@bravo.test")
    page = cloud.client.get("/ca-list")
    assert "Only a cloud operator can change" in page.text
    response = _upload(cloud, trustme.CA().cert_pem.bytes(), csrf_of(page.text))
    assert response.status_code == 403
    assert "'bob@bravo.test' is not a cloud operator" in html.unescape(response.text)
    assert _versions(cloud) == [1]


def _leaf_pem() -> bytes:
    ca = trustme.CA()
    return ca.issue_cert("leaf.test").cert_chain_pems[0].bytes()


def _expired_ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Expired CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_upload_refuses_non_ca_expired_garbage_and_duplicates(cloud: Cloud, demo_pki) -> None:
    login(cloud.client, "alice@acme.test")
    token = csrf_of(cloud.client.get("/ca-list").text)
    cases = [
        (_leaf_pem(), "is not a CA certificate"),
        (_expired_ca_pem(), "'CN=Expired CA' expired on"),
        (b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "not a PEM"),
        (demo_pki.root_ca.read_bytes(), "already in the published list"),
    ]
    for pem, message in cases:
        response = _upload(cloud, pem, token)
        assert response.status_code == 400
        assert message in html.unescape(response.text)
    assert _versions(cloud) == [1]


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_webex_preset_flags_expired_and_publishes_only_available(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    page = cloud.client.get("/ca-list")
    assert "Baltimore CyberTrust Root" in page.text and "expired 2025-05-12" in page.text
    assert "GTE CyberTrust Global Root" in page.text and "expired 2018-08-13" in page.text
    assert "serial number 0" in page.text  # Go Daddy G2, the one member still in certifi
    response = cloud.client.post(
        "/ca-list/preset", data={"name": "webex", "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 200
    assert "Published version 2: preset webex; skipped:" in response.text
    with cloud.services.database.transaction() as db:
        token = db.execute(
            sa.select(ca_list_version.c.manifest).where(ca_list_version.c.sequence == 2)
        ).scalar_one()
    _, manifest = read_unverified(token)
    subjects = [
        x509.load_der_x509_certificate(d).subject.rfc4514_string() for d in manifest.certificates
    ]
    assert subjects == [
        "CN=Go Daddy Root Certificate Authority - G2,O=GoDaddy.com\\, Inc.,"
        "L=Scottsdale,ST=Arizona,C=US"
    ]


def test_audit_and_connectors_need_login(cloud: Cloud) -> None:
    for path in ("/connectors", "/ca-list", "/audit"):
        response = cloud.client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


def test_error_page_never_shows_a_traceback(cloud: Cloud) -> None:
    response = cloud.client.get("/no/such/page")
    assert response.status_code == 404
    assert "Traceback" not in response.text
    response = cloud.client.post("/login", data={"login": "x"})  # no CSRF, no password
    assert response.status_code == 403 and "Traceback" not in response.text


def test_other_signing_key_manifests_do_not_verify(cloud: Cloud) -> None:
    with cloud.services.database.transaction() as db:
        token = db.execute(sa.select(ca_list_version.c.manifest)).scalar_one()
    with pytest.raises(ManifestBadSignature):
        verify_manifest(token, Ed25519PrivateKey.generate().public_key(), now=cloud.clock())


def test_csrf_field_is_on_every_portal_form(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    for path in ("/connectors", "/ca-list", "/audit"):
        text = cloud.client.get(path).text
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", text, flags=re.S)
        assert forms
        for form in forms:
            # Not just the field: its value (a macro imported without context renders "").
            assert re.search(r'name="csrf_token" value="[^"]+"', form), form
