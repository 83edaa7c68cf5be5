"""The registration exchange trusts the bootstrap anchors only: refused cloud certificates.

Each twin runs a real cloud process with a certificate the connector must refuse, and
checks the refusal names what would be needed, and that nothing was stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from connector_stack import ConnectorFactory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybridge.connector.demo_run import RoleProcess, start_cloud
from hybridge.demo.pki import DemoPki

pytestmark = pytest.mark.slow  # real role processes on loopback


def _other_host_certificate(pki: DemoPki, directory: Path) -> tuple[Path, Path]:
    """A server certificate from the demo issuing CA (a bootstrap CA's chain) for another host."""
    issuer_cert = x509.load_pem_x509_certificate(pki.path("issuing-ca.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key(
        pki.path("issuing-ca.key").read_bytes(), password=None
    )
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other.hybridge.test")]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("other.hybridge.test")]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "other.pem", directory / "other.key"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + issuer_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def foreign_ca() -> trustme.CA:
    return trustme.CA(organization_name="Elsewhere Trust Services")


@pytest.fixture(scope="module")
def foreign_cloud(
    tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki, foreign_ca: trustme.CA
) -> Iterator[RoleProcess]:
    work = tmp_path_factory.mktemp("foreign-cloud")
    leaf = foreign_ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca = work / "server.pem", work / "server.key", work / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    foreign_ca.cert_pem.write_to_path(str(ca))
    role = start_cloud(work, demo_pki, cert=cert, key=key, cert_ca=ca)
    yield role
    role.stop()


@pytest.fixture(scope="module")
def misnamed_cloud(
    tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki
) -> Iterator[RoleProcess]:
    work = tmp_path_factory.mktemp("misnamed-cloud")
    cert, key = _other_host_certificate(demo_pki, work)
    role = start_cloud(work, demo_pki, cert=cert, key=key)
    yield role
    role.stop()


def _callback_with_started_state(connector, cloud_url: str):  # type: ignore[no-untyped-def]
    authorize = connector.start(cloud_url)
    state = authorize.split("state=")[1].split("&")[0]
    # The TLS handshake fails before any byte of the request is sent, so no real code is
    # needed to reach it: the connector never gets as far as presenting one.
    return connector.callback({"state": state, "code": "never-sent"})


def test_cloud_certificate_from_a_ca_outside_the_bootstrap_set_is_refused(
    foreign_cloud: RoleProcess, foreign_ca: trustme.CA, make: ConnectorFactory
) -> None:
    connector = make()
    refused = _callback_with_started_state(connector, foreign_cloud.url)
    assert refused.status_code == 400
    needed = x509.load_pem_x509_certificate(foreign_ca.cert_pem.bytes()).subject.rfc4514_string()
    text = refused.text.replace("&#39;", "'")
    assert "does not chain to the bootstrap anchors (used only for registration)" in text
    assert f"it would need the CA '{needed}', which is not a bootstrap anchor" in text
    assert f'<strong id="needed-ca">{needed}</strong>' in text
    connector.assert_nothing_stored()


def test_cloud_certificate_from_a_bootstrap_ca_for_another_host_is_refused(
    misnamed_cloud: RoleProcess, make: ConnectorFactory
) -> None:
    connector = make()
    refused = _callback_with_started_state(connector, misnamed_cloud.url)
    assert refused.status_code == 400
    text = refused.text.replace("&#39;", "'")
    assert "chains to the bootstrap anchors (used only for registration) but is not valid" in text
    assert "for 'localhost'; it names other.hybridge.test" in text
    connector.assert_nothing_stored()


def test_bootstrap_anchors_never_verify_platform_connections(
    demo_pki: DemoPki, make: ConnectorFactory
) -> None:
    # The demo root is a bootstrap anchor; a platform connection must still find nothing.
    from hybridge.truststore import NoAnchors, TrustUse

    connector = make()
    with pytest.raises(NoAnchors):
        connector.services.store.ssl_context(TrustUse.PLATFORM)
    assert connector.client.get("/api/trust/anchors").json() == {"anchors": []}


def test_a_manual_anchor_does_not_make_the_registration_trusted(
    foreign_cloud: RoleProcess, foreign_ca: trustme.CA, make: ConnectorFactory
) -> None:
    # The admin trusts the foreign CA for the platform; registration still uses the
    # bootstrap set only (DESIGN.md §3 invariant 1), so the cloud is refused all the same.
    from hybridge.truststore import CertificateSource

    connector = make()
    store = connector.services.store
    store.add_manual([CertificateSource("ca.pem", foreign_ca.cert_pem.bytes())], actor="test")
    refused = _callback_with_started_state(connector, foreign_cloud.url)
    assert refused.status_code == 400
    assert "does not chain to the bootstrap anchors" in refused.text
    assert connector.services.credentials.current() is None
    assert connector.services.credentials.secret_count() == 0
    assert [r.anchor.source.value for r in store.list_anchors()] == ["manual"]
    assert store.installed_cloud_sequence() is None
