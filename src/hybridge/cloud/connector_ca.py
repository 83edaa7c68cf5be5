"""Issue connector client certificates from a CSR, once the CSR proves the approved key."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybridge.cloud.errors import OAuthError
from hybridge.cloud.keys import CloudKeys

MAX_CSR_BYTES = 16 * 1024


def key_fingerprint(public_key: object) -> str:
    """Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (the protocol's ``key_fp``)."""
    spki = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def load_csr(pem: str, key_fp: str, hostname: str) -> x509.CertificateSigningRequest:
    """The CSR in ``pem`` once it proves possession of the approved key for ``hostname``.

    Raises:
        OAuthError: invalid_request (unparseable, bad self-signature, weak key) or
            invalid_grant (a key or name other than the ones the admin approved).
    """
    if not pem or len(pem) > MAX_CSR_BYTES:
        raise OAuthError("invalid_request", f"csr missing or over {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise OAuthError("invalid_request", "csr is not a PEM PKCS#10 request") from exc
    # RFC 2986 §4.2: the self-signature is the proof that the requester holds the key.
    if not csr.is_signature_valid:
        raise OAuthError("invalid_request", "csr signature does not verify with its own key")
    key = csr.public_key()
    acceptable = (
        (
            isinstance(key, ec.EllipticCurvePublicKey)
            and key.curve.name in {"secp256r1", "secp384r1"}
        )
        or isinstance(key, ed25519.Ed25519PublicKey)
        or (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048)
    )
    if not acceptable:
        raise OAuthError(
            "invalid_request", "csr key must be EC P-256/P-384, Ed25519 or RSA >= 2048 bits"
        )
    got = key_fingerprint(key)
    # The fingerprint both admins saw is the binding: a CSR for any other key is refused.
    if got != key_fp:
        raise OAuthError(
            "invalid_grant",
            f"csr key fingerprint {got!r} does not match the approved {key_fp!r}",
        )
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    if common_name.lower() != hostname:
        raise OAuthError(
            "invalid_grant", f"csr subject CN {common_name!r} is not the approved {hostname!r}"
        )
    return csr


def issue_client_certificate(
    keys: CloudKeys,
    csr: x509.CertificateSigningRequest,
    connector_id: str,
    hostname: str,
    organisation: str,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> x509.Certificate:
    """A clientAuth certificate for the CSR's key, naming the connector by URN."""
    ca = keys.connector_ca
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]),
                    x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64]),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # The identity is the URN, not the hostname: hostnames are chosen by the connector.
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:hybridge:connector:{connector_id}")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(keys.connector_ca_key.public_key()),
            critical=False,
        )
        .sign(keys.connector_ca_key, hashes.SHA256())
    )
