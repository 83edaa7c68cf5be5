"""Deregistration by the connector's client certificate, and its refusals.

The TLS layer is the integration test's business (tests/integration/cloud); here the peer
certificate dependency is overridden with real certificates issued by the registration.
"""

from __future__ import annotations

import datetime as dt

from cloud_helpers import Cloud, ConnectorSide, approve, login
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybridge.cloud.api import get_peer_certificate


def _register(cloud: Cloud, side: ConnectorSide) -> tuple[str, x509.Certificate, str]:
    login(cloud.client, "alice@acme.test")
    code = approve(cloud.client, side)["code"]
    body = cloud.client.post("/oauth/token", data=side.token_form(code)).json()
    cert = x509.load_pem_x509_certificate(body["client_certificate"].encode())
    return body["connector_id"], cert, code


def _as(cloud: Cloud, cert: x509.Certificate | None) -> None:
    cloud.client.app.dependency_overrides[get_peer_certificate] = lambda: cert


def test_connector_deregisters_itself_once(cloud: Cloud, side: ConnectorSide) -> None:
    connector_id, cert, _ = _register(cloud, side)
    _as(cloud, cert)
    response = cloud.client.post(f"/api/connectors/{connector_id}/deregister")
    assert response.status_code == 200
    assert response.json() == {"connector_id": connector_id, "status": "deregistered"}
    again = cloud.client.post(f"/api/connectors/{connector_id}/deregister")
    assert again.status_code == 403
    assert again.json()["detail"] == f"connector {connector_id!r} is deregistered"
    assert "connector.deregistered" in cloud.client.get("/audit").text


def test_no_certificate_is_refused(cloud: Cloud, side: ConnectorSide) -> None:
    connector_id, _, _ = _register(cloud, side)
    _as(cloud, None)
    response = cloud.client.post(f"/api/connectors/{connector_id}/deregister")
    assert response.status_code == 403
    assert "client certificate is required" in response.json()["detail"]


def test_one_connector_cannot_deregister_another(cloud: Cloud, side: ConnectorSide) -> None:
    first_id, _, _ = _register(cloud, side)
    _, other_cert, _ = _register(cloud, ConnectorSide(hostname="other.acme.test"))
    _as(cloud, other_cert)
    response = cloud.client.post(f"/api/connectors/{first_id}/deregister")
    assert response.status_code == 403
    assert "cannot deregister" in response.json()["detail"]


def test_revoked_connector_is_refused(cloud: Cloud, side: ConnectorSide) -> None:
    connector_id, cert, code = _register(cloud, side)
    cloud.client.post("/oauth/token", data=side.token_form(code))  # replay: revokes
    _as(cloud, cert)
    response = cloud.client.post(f"/api/connectors/{connector_id}/deregister")
    assert response.status_code == 403
    assert response.json()["detail"] == f"connector {connector_id!r} is revoked"


def test_same_urn_from_another_ca_is_refused(cloud: Cloud, side: ConnectorSide) -> None:
    connector_id, real, _ = _register(cloud, side)
    forged_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, side.hostname)]))
        .issuer_name(real.issuer)  # claims the connector CA's name, signed by another key
        .public_key(forged_key.public_key())
        .serial_number(real.serial_number)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:hybridge:connector:{connector_id}")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _as(cloud, forged)
    response = cloud.client.post(f"/api/connectors/{connector_id}/deregister")
    assert response.status_code == 403
    assert response.json()["detail"] == "client certificate is not issued by the connector CA"
