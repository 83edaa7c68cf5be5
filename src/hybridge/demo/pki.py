"""A local PKI for the demo and the tests: every certificate the three roles need.

``init_demo_pki(DIR)`` writes::

    DIR/
      demo-pki.json                 what is where (no secret in it)
      root-ca.pem  root-ca.key      "Hybridge Demo Public Root CA": stands in for the public CAs
      issuing-ca.pem issuing-ca.key the intermediate that issues every server certificate
      cloud/server.pem  .key        cloud HTTPS: localhost, cloud.hybridge.test, 127.0.0.1
      cloud/callservice.pem .key    the call-service SIP peer: callservice.hybridge.test
      cloud/ca-roots.pem            roots of those two (the cloud's default published CA list)
      cloud/connector-ca.pem .key   the CA that issues connector client certificates at registration
      cloud/list-signing.key .pub.pem  Ed25519 key that signs CA-list manifests
      connector/bootstrap.pem       the bootstrap anchors the connector ships with (the demo root)
      connector/server.pem .key     connector admin UI: localhost, connector.hybridge.test,
                                    127.0.0.1
      edge/server.pem .key          the edge: edge.hybridge.test (serverAuth + clientAuth)

Server certificate files hold the leaf then the issuing CA, as TLS servers send them. Private
keys are written 0600 (created with that mode, never widened). A second run on a complete
directory changes nothing; a directory holding anything else is refused, never overwritten.

Written with ``cryptography`` rather than ``trustme``: trustme is a test dependency and this
ships in the package (``hybridge pki init-demo`` and ``hybridge demo``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybridge.core.errors import HybridgeError

MARKER = "demo-pki.json"
ROOT_NAME = "Hybridge Demo Public Root CA"
ISSUING_NAME = "Hybridge Demo Issuing CA"
CONNECTOR_CA_NAME = "Hybridge Demo Cloud Connector CA"
CLOUD_DNS = ("localhost", "cloud.hybridge.test")
CALLSERVICE_DNS = "callservice.hybridge.test"
CONNECTOR_DNS = ("localhost", "connector.hybridge.test")
EDGE_DNS = "edge.hybridge.test"


class DemoPkiError(HybridgeError):
    """The demo PKI directory cannot be created (it holds other files, or is unwritable)."""


@dataclass(frozen=True)
class DemoPki:
    """Paths of a demo PKI directory (see the module docstring for what each one is)."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def root_ca(self) -> Path:
        return self.directory / "root-ca.pem"

    @property
    def cloud_cert(self) -> Path:
        return self.directory / "cloud" / "server.pem"

    @property
    def cloud_key(self) -> Path:
        return self.directory / "cloud" / "server.key"

    @property
    def callservice_cert(self) -> Path:
        return self.directory / "cloud" / "callservice.pem"

    @property
    def callservice_key(self) -> Path:
        return self.directory / "cloud" / "callservice.key"

    @property
    def cloud_ca_roots(self) -> Path:
        return self.directory / "cloud" / "ca-roots.pem"

    @property
    def connector_ca_cert(self) -> Path:
        return self.directory / "cloud" / "connector-ca.pem"

    @property
    def connector_ca_key(self) -> Path:
        return self.directory / "cloud" / "connector-ca.key"

    @property
    def list_signing_key(self) -> Path:
        return self.directory / "cloud" / "list-signing.key"

    @property
    def list_signing_public(self) -> Path:
        return self.directory / "cloud" / "list-signing.pub.pem"

    @property
    def bootstrap_bundle(self) -> Path:
        return self.directory / "connector" / "bootstrap.pem"

    @property
    def connector_cert(self) -> Path:
        return self.directory / "connector" / "server.pem"

    @property
    def connector_key(self) -> Path:
        return self.directory / "connector" / "server.key"

    @property
    def edge_cert(self) -> Path:
        return self.directory / "edge" / "server.pem"

    @property
    def edge_key(self) -> Path:
        return self.directory / "edge" / "server.key"

    def files(self) -> dict[str, Path]:
        """Every file of the layout by a stable name (the keys of ``demo-pki.json``)."""
        names = [
            "root_ca",
            "cloud_cert",
            "cloud_key",
            "callservice_cert",
            "callservice_key",
            "cloud_ca_roots",
            "connector_ca_cert",
            "connector_ca_key",
            "list_signing_key",
            "list_signing_public",
            "bootstrap_bundle",
            "connector_cert",
            "connector_key",
            "edge_cert",
            "edge_key",
        ]
        files = {name: getattr(self, name) for name in names}
        files["root_ca_key"] = self.directory / "root-ca.key"
        files["issuing_ca"] = self.directory / "issuing-ca.pem"
        files["issuing_ca_key"] = self.directory / "issuing-ca.key"
        return files

    def is_complete(self) -> bool:
        return (self.directory / MARKER).is_file() and all(
            path.is_file() for path in self.files().values()
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hybridge Demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(
    common_name: str,
    now: dt.datetime,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    path_length: int | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    issuer_name, signing_key = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        # RFC 5280 §4.2.1.9: CA certificates carry basicConstraints cA=TRUE, critical.
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256()), key


def _leaf(
    dns: tuple[str, ...],
    ips: tuple[str, ...],
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: dt.datetime,
    *,
    client_auth: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    cert = (
        x509.CertificateBuilder()
        # CN mirrors the first name that is not "localhost" (people read the CN).
        .subject_name(_name(next((n for n in dns if n != "localhost"), dns[0])))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=397))  # CA/B Forum BR §6.3.2 maximum
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # RFC 6125 §6.4.4 / BR: names live in the SAN; the CN is for humans only.
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
        .sign(issuer[1], hashes.SHA256())
    )
    return cert, key


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _key_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite; 0o600 at creation so a key is never readable, even briefly.
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def init_demo_pki(directory: Path, *, now: dt.datetime | None = None) -> tuple[DemoPki, bool]:
    """Create the demo PKI in ``directory`` (see the module docstring).

    Returns:
        The layout, and ``True`` when files were created (``False``: it was already complete).

    Raises:
        DemoPkiError: ``directory`` holds other files or a partial PKI, or cannot be written.
    """
    pki = DemoPki(directory)
    if pki.is_complete():
        return pki, False
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DemoPkiError(
            f"{str(directory)!r} exists and is not an empty directory or a complete demo PKI; "
            "choose a new directory (nothing is overwritten)"
        )
    when = now or dt.datetime.now(dt.UTC)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        root = _ca(ROOT_NAME, when, None, path_length=1)
        issuing = _ca(ISSUING_NAME, when, root, path_length=0)
        cloud = _leaf(CLOUD_DNS, ("127.0.0.1",), issuing, when, client_auth=False)
        # The call-service peer authenticates both ways on SIP/TLS (mutual TLS to the edge).
        callservice = _leaf((CALLSERVICE_DNS,), (), issuing, when, client_auth=True)
        connector = _leaf(CONNECTOR_DNS, ("127.0.0.1",), issuing, when, client_auth=True)
        edge = _leaf((EDGE_DNS,), (), issuing, when, client_auth=True)
        connector_ca = _ca(CONNECTOR_CA_NAME, when, None, path_length=0)
        list_key = Ed25519PrivateKey.generate()

        _write(pki.root_ca, _pem(root[0]))
        _write(directory / "root-ca.key", _key_pem(root[1]), secret=True)
        _write(directory / "issuing-ca.pem", _pem(issuing[0]))
        _write(directory / "issuing-ca.key", _key_pem(issuing[1]), secret=True)
        for cert_path, key_path, (cert, key) in (
            (pki.cloud_cert, pki.cloud_key, cloud),
            (pki.callservice_cert, pki.callservice_key, callservice),
            (pki.connector_cert, pki.connector_key, connector),
            (pki.edge_cert, pki.edge_key, edge),
        ):
            _write(cert_path, _pem(cert, issuing[0]))
            _write(key_path, _key_pem(key), secret=True)
        _write(pki.cloud_ca_roots, _pem(root[0]))
        _write(pki.connector_ca_cert, _pem(connector_ca[0]))
        _write(pki.connector_ca_key, _key_pem(connector_ca[1]), secret=True)
        _write(pki.list_signing_key, _key_pem(list_key), secret=True)
        _write(
            pki.list_signing_public,
            list_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        _write(pki.bootstrap_bundle, _pem(root[0]))
        description = {name: str(path.relative_to(directory)) for name, path in pki.files().items()}
        _write(directory / MARKER, (json.dumps(description, indent=2) + "\n").encode())
    except OSError as exc:
        raise DemoPkiError(f"cannot write the demo PKI in {str(directory)!r}: {exc}") from exc
    return pki, True


ORG_EDGE_CA_NAME = "Hybridge Demo Organisation Edge CA"


@dataclass(frozen=True)
class OrgEdgeIdentity:
    """An organisation's own CA and the edge certificate it issued (``issue_org_edge``)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "org-edge-ca.pem"

    @property
    def edge_cert(self) -> Path:
        return self.directory / "edge.pem"

    @property
    def edge_key(self) -> Path:
        return self.directory / "edge.key"


def issue_org_edge(directory: Path, *, now: dt.datetime | None = None) -> OrgEdgeIdentity:
    """An organisation's private CA and its edge's certificate, in ``directory``.

    The demo's edge uses these rather than the demo PKI's ``edge/server.pem``: the connector
    must trust the edge before it is registered, and an organisation uploading its own CA
    by hand (the seed's manual upload) says so honestly, while the demo root reaches the
    connector through the cloud's push, as registration shows. Writes ``org-edge-ca.pem``,
    ``edge.pem`` (``edge.hybridge.test``, serverAuth + clientAuth, then the CA) and
    ``edge.key`` (0600); the CA's key is not kept. Never overwrites a file.

    Raises:
        DemoPkiError: a file exists already, or the directory cannot be written.
    """
    identity = OrgEdgeIdentity(directory)
    when = now or dt.datetime.now(dt.UTC)
    try:
        ca = _ca(ORG_EDGE_CA_NAME, when, None, path_length=0)
        edge = _leaf((EDGE_DNS,), (), ca, when, client_auth=True)
        _write(identity.ca_cert, _pem(ca[0]))
        _write(identity.edge_cert, _pem(edge[0], ca[0]))
        _write(identity.edge_key, _key_pem(edge[1]), secret=True)
    except OSError as exc:
        raise DemoPkiError(
            f"cannot write the organisation's edge identity in {str(directory)!r}: {exc}"
        ) from exc
    return identity
