"""The cloud's own keys: the connector CA, the list-signing key, its server chain.

Given explicitly (``hybridge cloud serve --connector-ca ... --list-signing-key ...``, as the
demo does) or generated on first start in the data directory, written 0600 and never
overwritten. A real deployment keeps them in an HSM or a vault; that is a later issue.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from hybridge.cloud.errors import CloudKeyError
from hybridge.cloud.settings import CloudSettings

CaKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CloudKeys:
    """Loaded key material. ``repr`` never shows the private keys."""

    connector_ca: x509.Certificate
    connector_ca_key: CaKey = field(repr=False)
    list_signing_key: Ed25519PrivateKey = field(repr=False)
    server_chain: tuple[x509.Certificate, ...]
    callservice_chain: tuple[x509.Certificate, ...] = ()

    @property
    def connector_ca_pem(self) -> str:
        return self.connector_ca.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def list_signing_public_pem(self) -> str:
        return (
            self.list_signing_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def cloud_ca_hint(self) -> str:
        """The subject of the CA the server chain ends at (what a manual-mode admin uploads).

        The last certificate of the chain file is the one closest to the root; if it is
        self-signed it is the root itself, else its issuer is the root's subject.
        """
        last = self.server_chain[-1]
        return (last.subject if last.subject == last.issuer else last.issuer).rfc4514_string()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _generate_connector_ca(cert_path: Path, key_path: Path, now: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hybridge Cloud Connector CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        # RFC 5280 §4.2.1.9: a CA issuing end-entity certificates only: pathLen 0.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.PrivateFormat.PKCS8
    _write_new(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, pem, serialization.NoEncryption()),
        0o600,
    )
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def load_cloud_keys(settings: CloudSettings) -> CloudKeys:
    """Load (or on first start generate) the connector CA and the list-signing key.

    Raises:
        CloudKeyError: a file is missing, unreadable or of the wrong kind.
    """
    now = settings.clock()
    ca_cert_path = settings.connector_ca_cert or settings.data_dir / "connector-ca.pem"
    ca_key_path = settings.connector_ca_key or settings.data_dir / "connector-ca.key"
    list_key_path = settings.list_signing_key or settings.data_dir / "list-signing.key"
    try:
        if settings.connector_ca_cert is None and not ca_cert_path.exists():
            _generate_connector_ca(ca_cert_path, ca_key_path, now)
        if settings.list_signing_key is None and not list_key_path.exists():
            new_key = Ed25519PrivateKey.generate()
            _write_new(
                list_key_path,
                new_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                0o600,
            )
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        list_key = serialization.load_pem_private_key(list_key_path.read_bytes(), password=None)
        chain = tuple(x509.load_pem_x509_certificates(settings.server_cert.read_bytes()))
        callservice: tuple[x509.Certificate, ...] = ()
        if settings.callservice_cert is not None:
            callservice = tuple(
                x509.load_pem_x509_certificates(settings.callservice_cert.read_bytes())
            )
    except (OSError, ValueError) as exc:
        # The message names the file, never its content.
        raise CloudKeyError(
            f"cannot load the cloud's keys: {exc.__class__.__name__}: {exc}"
        ) from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CloudKeyError(f"connector CA key {str(ca_key_path)!r} must be an EC key")
    if ca_key.public_key() != ca_cert.public_key():
        raise CloudKeyError(f"{str(ca_key_path)!r} is not the key of {str(ca_cert_path)!r}")
    if not isinstance(list_key, Ed25519PrivateKey):
        raise CloudKeyError(f"list-signing key {str(list_key_path)!r} must be Ed25519")
    if not chain:
        raise CloudKeyError(f"no certificate in {str(settings.server_cert)!r}")
    return CloudKeys(ca_cert, ca_key, list_key, chain, callservice)
