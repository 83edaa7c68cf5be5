"""Describe a certificate: the facts an admin reads in a trust list, as plain values."""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import SignatureAlgorithmOID

_HEX_40 = re.compile(r"[0-9a-f]{40}")
_HEX_64 = re.compile(r"[0-9a-f]{64}")

# The names OpenSSL 3 prints (``openssl x509 -text``), so that both tools say the same thing.
_SIGNATURE_NAMES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    x509.ObjectIdentifier("1.3.14.3.2.29"): "sha1WithRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassaPss",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "dsaWithSHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA224: "dsa_with_SHA224",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa_with_SHA256",
    SignatureAlgorithmOID.ED25519: "ED25519",
    SignatureAlgorithmOID.ED448: "ED448",
    x509.ObjectIdentifier("1.2.840.113549.1.1.2"): "md2WithRSAEncryption",
    x509.ObjectIdentifier("1.2.840.113549.1.1.3"): "md4WithRSAEncryption",
}

_RSA_PKCS1_OIDS = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_MD5,
        SignatureAlgorithmOID.RSA_WITH_SHA1,
        x509.ObjectIdentifier("1.3.14.3.2.29"),
        SignatureAlgorithmOID.RSA_WITH_SHA224,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
    }
)

_ECDSA_OIDS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA1,
        SignatureAlgorithmOID.ECDSA_WITH_SHA224,
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
_DSA_OIDS = frozenset(
    {
        SignatureAlgorithmOID.DSA_WITH_SHA1,
        SignatureAlgorithmOID.DSA_WITH_SHA224,
        SignatureAlgorithmOID.DSA_WITH_SHA256,
    }
)

# NIST names for the curves that have them (FIPS 186-4 appendix D), as admins know them.
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

# RFC 5280 §4.2.1.3 order, with cryptography's attribute names.
_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says, as display-ready values (see ``describe``)."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    fingerprint_sha1: str
    key_type: str
    key_size: int | None
    key: str
    signature_algorithm: str
    is_ca: bool
    path_length: int | None
    key_usage: tuple[str, ...]
    self_signed: bool
    #: 1 or 3; a version 1 certificate has no extensions at all.
    version: int = 3

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, not {getattr(self, name)!r}")
        if not _HEX_64.fullmatch(self.fingerprint_sha256):
            raise ValueError(f"not a SHA-256 fingerprint: {self.fingerprint_sha256!r}")
        if not _HEX_40.fullmatch(self.fingerprint_sha1):
            raise ValueError(f"not a SHA-1 fingerprint: {self.fingerprint_sha1!r}")


def describe(certificate: x509.Certificate) -> CertificateInfo:
    """Return the display facts of ``certificate``.

    Never raises for a certificate that ``load_certificates`` parsed: an unsupported key
    comes back as ``key_type`` "unknown (OID)".
    """
    der = certificate.public_bytes(Encoding.DER)
    key_type, key_size, key = _key(certificate)
    is_ca, path_length = ca_flags(certificate)
    serial = serial_number(certificate)
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=("-" if serial < 0 else "") + format(abs(serial), "x"),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=fingerprint_sha256(der),
        fingerprint_sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        key_type=key_type,
        key_size=key_size,
        key=key,
        signature_algorithm=signature_algorithm_name(certificate),
        is_ca=is_ca,
        path_length=path_length,
        key_usage=key_usage(certificate),
        self_signed=is_self_issued(certificate) and self_signature_ok(certificate) is not False,
        version=1 if certificate.version is x509.Version.v1 else 3,
    )


def fingerprint_sha256(der: bytes) -> str:
    """The SHA-256 of ``der`` as lowercase hex without separators (the store's key)."""
    return hashlib.sha256(der).hexdigest()


def signature_algorithm_name(certificate: x509.Certificate) -> str:
    """The signature algorithm's OpenSSL name, or its dotted OID when we have no name."""
    oid = certificate.signature_algorithm_oid
    return _SIGNATURE_NAMES.get(oid, oid.dotted_string)


def ca_flags(certificate: x509.Certificate) -> tuple[bool, int | None]:
    """Return ``(is_ca, path_length)``.

    RFC 5280 §4.2.1.9: a CA certificate carries basicConstraints with cA TRUE. A version 1
    certificate cannot carry extensions; old real roots are v1 and self-signed. RFC 5280
    §6.1.4(k) requires basicConstraints of *intermediates* only, and §6.1.1(d) takes trust
    anchors as given, so a self-issued v1 certificate (subject = issuer; ``assess`` checks
    its signature) is taken as a CA, as OpenSSL's X509_check_ca does. A v1 certificate
    issued by another CA is not a CA.
    """
    if certificate.version is x509.Version.v1:
        return is_self_issued(certificate), None
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False, None
    return constraints.value.ca, constraints.value.path_length


def key_usage(certificate: x509.Certificate) -> tuple[str, ...]:
    """The key usages asserted, in RFC 5280 §4.2.1.3 order; empty without the extension."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    names = [name for name in _KEY_USAGES if getattr(usage, name)]
    # encipher_only/decipher_only are only defined with keyAgreement (cryptography raises).
    if usage.key_agreement:
        names += [name for name in ("encipher_only", "decipher_only") if getattr(usage, name)]
    return tuple(names)


def is_self_issued(certificate: x509.Certificate) -> bool:
    """RFC 5280 §3.3: subject and issuer are the same name."""
    return certificate.subject == certificate.issuer


def self_signature_ok(certificate: x509.Certificate) -> bool | None:
    """Does the certificate's signature verify with its own public key?

    Returns ``True`` or ``False``, or ``None`` when it cannot be checked here (md2/md4, or a
    key the crypto library does not implement). Verified with the primitives directly
    because ``verify_directly_issued_by`` refuses SHA-1 signatures, which many real
    self-signed roots carry (their self-signature is still worth checking for corruption).
    """
    try:
        key = certificate.public_key()
        algorithm = certificate.signature_hash_algorithm
        parameters = certificate.signature_algorithm_parameters
    except (UnsupportedAlgorithm, ValueError):
        return None
    signature, tbs = certificate.signature, certificate.tbs_certificate_bytes
    oid = certificate.signature_algorithm_oid
    # The padding/scheme comes from the OID family: cryptography reports no parameters for
    # old OIDs (md5WithRSAEncryption, ecdsa-with-SHA1) that real roots still carry. A key
    # of one family cannot have made a signature of another: that does not verify.
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if oid == SignatureAlgorithmOID.RSASSA_PSS and isinstance(parameters, padding.PSS):
                scheme: padding.AsymmetricPadding = parameters
            elif oid in _RSA_PKCS1_OIDS:
                scheme = padding.PKCS1v15()  # RFC 8017 appendix A.2.4
            else:
                return False
            if algorithm is None:
                return False
            key.verify(signature, tbs, scheme, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if oid not in _ECDSA_OIDS or algorithm is None:
                return False
            key.verify(signature, tbs, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            if oid not in _DSA_OIDS or algorithm is None:
                return False
            key.verify(signature, tbs, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey):
            if oid != SignatureAlgorithmOID.ED25519:
                return False
            key.verify(signature, tbs)
        elif isinstance(key, ed448.Ed448PublicKey):
            if oid != SignatureAlgorithmOID.ED448:
                return False
            key.verify(signature, tbs)
        else:
            return None
    except InvalidSignature:
        return False
    except UnsupportedAlgorithm:
        return None
    return True


def serial_number(certificate: x509.Certificate) -> int:
    """The serial number, without cryptography's warning for non-positive ones.

    RFC 5280 §4.1.2.2 wants a positive serial; real roots (Go Daddy Class 2: 0) predate
    that, and ``assess`` reports it as a warning instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return certificate.serial_number


def _key(certificate: x509.Certificate) -> tuple[str, int | None, str]:
    try:
        key = certificate.public_key()
    except (UnsupportedAlgorithm, ValueError):
        oid = certificate.public_key_algorithm_oid.dotted_string
        return f"unknown ({oid})", None, f"unknown ({oid})"
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(key.curve.name, key.curve.name)
        return "EC", key.curve.key_size, f"EC {curve}"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, f"DSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", None, "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", None, "Ed448"
    # X25519/X448 keys can appear in certificates but never sign anything.
    name = type(key).__name__.removesuffix("PublicKey")
    return name, None, name
