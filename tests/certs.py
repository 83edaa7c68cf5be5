"""Build real certificates for tests: CAs, intermediates, leaves, and the odd ones.

Everything is made with ``cryptography`` and real keys. What its builder refuses to make
(SHA-1 and MD5 signatures, version 1 certificates, non-positive serial numbers) is made by
editing the DER of a normal certificate's TBSCertificate and signing it again with the
hazmat primitives, which still sign with those hashes: the result is a genuine certificate
whose signature verifies, exactly like the old ones in the wild.

    root = build("Test Root")
    inter = build("Test Intermediate", issuer=root)
    leaf = build("leaf.example", issuer=inter, is_ca=False)
    old = build("Old Root", key_type="rsa", key_size=1024, signature_hash="md5", version=1)
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

KeyType = Literal["rsa", "ec", "ed25519", "ed448", "dsa"]
HashName = Literal["sha256", "sha384", "sha512", "sha1", "md5"]

#: Real root certificates (provenance and fingerprints in its README.md).
REAL_ROOTS = Path(__file__).resolve().parent / "data" / "pki"

NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2035, 1, 1, tzinfo=dt.UTC)

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
    "sha1": hashes.SHA1(),  # noqa: S303 - making the weak certificates under test
    "md5": hashes.MD5(),  # noqa: S303 - making the weak certificates under test
}
# AlgorithmIdentifier OIDs for re-signed certificates (RFC 3279 §2.2, RFC 5758 §3).
_SIGNATURE_OIDS: dict[tuple[str, str], str] = {
    ("rsa", "md5"): "1.2.840.113549.1.1.4",
    ("rsa", "sha1"): "1.2.840.113549.1.1.5",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("rsa", "sha384"): "1.2.840.113549.1.1.12",
    ("rsa", "sha512"): "1.2.840.113549.1.1.13",
    ("ec", "sha1"): "1.2.840.10045.4.1",
    ("ec", "sha256"): "1.2.840.10045.4.3.2",
    ("ec", "sha384"): "1.2.840.10045.4.3.3",
    ("ec", "sha512"): "1.2.840.10045.4.3.4",
    ("dsa", "sha1"): "1.2.840.10040.4.3",
    ("dsa", "sha256"): "2.16.840.1.101.3.4.3.2",
}


def real_root(filename: str) -> bytes:
    """The PEM bytes of a real root under tests/data/pki, e.g. "baltimore-cybertrust-root.pem"."""
    return (REAL_ROOTS / filename).read_bytes()


#: The WebPKI-shaped certificate factory (AKI, SKI, EKU) the TLS and edge tests share.
TLSPKI = Path(__file__).resolve().parent / "unit" / "core" / "tlsverify" / "tlspki.py"


def load_tlspki() -> ModuleType:
    """The shared ``tlspki`` factory module, imported once per session under that name.

    It lives beside the tests that import it plainly (``from tlspki import ...``); loading it
    under the same name keeps one module object, so its classes (``Issued``) are one type.
    """
    if "tlspki" in sys.modules:
        return sys.modules["tlspki"]
    spec = importlib.util.spec_from_file_location("tlspki", TLSPKI)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tlspki"] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@functools.cache
def cached_key(
    key_type: KeyType = "ec", key_size: int | None = None
) -> CertificateIssuerPrivateKeyTypes:
    """One key per (type, size) for the whole run: RSA generation is the slow part of tests."""
    return new_key(key_type, key_size)


def new_key(
    key_type: KeyType = "ec", key_size: int | None = None
) -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key; ``key_size`` is bits for RSA/DSA, 256/384/521 for EC."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size or 2048)
    if key_type == "ec":
        curves = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}
        return ec.generate_private_key(curves[key_size or 256])
    if key_type == "dsa":
        return dsa.generate_private_key(key_size or 2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ed448.Ed448PrivateKey.generate()


def name(common_name: str, organization: str = "Hybridge Tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def build(
    common_name: str = "Hybridge Test Root",
    *,
    issuer: Issued | None = None,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    key_type: KeyType = "ec",
    key_size: int | None = None,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    is_ca: bool = True,
    basic_constraints: bool = True,
    path_length: int | None = None,
    key_usage: tuple[str, ...] | None = None,
    signature_hash: HashName = "sha256",
    version: Literal[1, 3] = 3,
    serial: int | None = None,
    san: tuple[str, ...] = (),
) -> Issued:
    """A real certificate; self-signed unless ``issuer`` is given.

    ``key_usage`` defaults to keyCertSign+cRLSign for a CA and digitalSignature for a leaf;
    pass ``()`` for no keyUsage extension. ``basic_constraints=False`` leaves the extension
    out. SHA-1/MD5 signatures, ``version=1`` and non-positive ``serial`` are made by
    re-signing (see the module docstring); a version 1 certificate has no extensions.
    """
    subject_key = key if key is not None else cached_key(key_type, key_size)
    signer_key = issuer.key if issuer is not None else subject_key
    issuer_name = issuer.certificate.subject if issuer is not None else name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(issuer_name)
        .public_key(subject_key.public_key())  # type: ignore[arg-type]
        .serial_number(serial if serial is not None and serial > 0 else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None),
            critical=True,
        )
    usages = (
        key_usage
        if key_usage is not None
        else (("key_cert_sign", "crl_sign") if is_ca else ("digital_signature",))
    )
    if usages:
        flags = {
            field: field in usages
            for field in (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            )
        }
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),  # type: ignore[arg-type]
        critical=False,
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host) for host in san]), critical=False
        )
    modern = signature_hash in ("sha256", "sha384", "sha512")
    if isinstance(signer_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        hash_for_builder = None
    else:
        hash_for_builder = _HASHES[signature_hash] if modern else hashes.SHA256()
    certificate = builder.sign(signer_key, hash_for_builder)
    needs_resign = not modern or version == 1 or (serial is not None and serial <= 0)
    if needs_resign:
        certificate = resign(
            certificate,
            signer_key,
            signature_hash=signature_hash,
            version=version,
            serial=serial if serial is not None and serial <= 0 else None,
        )
    return Issued(certificate, subject_key)


def chain() -> tuple[Issued, Issued, Issued]:
    """Root, intermediate and leaf, each a real signature of the one before."""
    root = build("Hybridge Test Root")
    intermediate = build(
        "Hybridge Test Intermediate", issuer=root, key=new_key("ec"), path_length=0
    )
    leaf = build(
        "leaf.example", issuer=intermediate, key=new_key("ec"), is_ca=False, san=("leaf.example",)
    )
    return root, intermediate, leaf


# --- DER surgery --------------------------------------------------------------------------


def resign(
    certificate: x509.Certificate,
    signer_key: CertificateIssuerPrivateKeyTypes,
    *,
    signature_hash: HashName = "sha256",
    version: Literal[1, 3] = 3,
    serial: int | None = None,
) -> x509.Certificate:
    """Edit the TBSCertificate of ``certificate`` and sign it again with ``signer_key``."""
    key_kind = _key_kind(signer_key)
    oid = _SIGNATURE_OIDS[(key_kind, signature_hash)]
    # AlgorithmIdentifier: RSA carries explicit NULL parameters (RFC 3279 §2.2.1), EC/DSA none.
    algorithm = der_tlv(0x30, der_oid(oid) + (b"\x05\x00" if key_kind == "rsa" else b""))
    fields = der_children(der_content(certificate.tbs_certificate_bytes))
    # TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject,
    # subjectPublicKeyInfo, [3] extensions (RFC 5280 §4.1).
    assert fields[0][0] == 0xA0, "expected a v3 TBSCertificate to edit"
    body = fields[1:7]
    body[1] = algorithm
    if serial is not None:
        body[0] = der_integer(serial)
    if version == 3:
        body = [fields[0], *body, *fields[7:]]
    tbs = der_tlv(0x30, b"".join(body))
    signature = sign_raw(signer_key, tbs, _HASHES[signature_hash])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-positive serials are what we are making
        return x509.load_der_x509_certificate(assemble(tbs, algorithm, signature))


def assemble(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }."""
    return der_tlv(0x30, tbs + algorithm + der_tlv(0x03, b"\x00" + signature))


def tamper_signature(certificate: x509.Certificate) -> bytes:
    """The DER of ``certificate`` with one bit of its signature flipped."""
    der = bytearray(certificate.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature BIT STRING, which is the last element
    return bytes(der)


def sign_raw(
    key: CertificateIssuerPrivateKeyTypes, data: bytes, algorithm: hashes.HashAlgorithm
) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, algorithm)
    raise TypeError(f"cannot re-sign with {type(key).__name__}")


def _key_kind(key: CertificateIssuerPrivateKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa"
    raise TypeError(f"no re-signing for {type(key).__name__}")


def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def der_tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_length(len(content)) + content


def der_integer(value: int) -> bytes:
    """INTEGER in minimal two's complement (X.690 §8.3), negative values included."""
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return der_tlv(0x02, value.to_bytes(size, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return der_tlv(0x06, bytes(out))


def der_content(tlv: bytes) -> bytes:
    """The content octets of one definite-length TLV."""
    first = tlv[1]
    if first < 0x80:
        return tlv[2 : 2 + first]
    count = first & 0x7F
    length = int.from_bytes(tlv[2 : 2 + count], "big")
    return tlv[2 + count : 2 + count + length]


def der_children(content: bytes) -> list[bytes]:
    """Split concatenated definite-length TLVs into their full encodings."""
    out, cursor = [], 0
    while cursor < len(content):
        first = content[cursor + 1]
        if first < 0x80:
            header, length = 2, first
        else:
            count = first & 0x7F
            header = 2 + count
            length = int.from_bytes(content[cursor + 2 : cursor + header], "big")
        out.append(content[cursor : cursor + header + length])
        cursor += header + length
    return out


# --- PKCS#7 ---------------------------------------------------------------------------------

SIGNED_DATA_OID = "1.2.840.113549.1.7.2"
DATA_OID = "1.2.840.113549.1.7.1"


def pkcs7_der(certificates: list[bytes], *, with_certificates_field: bool = True) -> bytes:
    """A degenerate PKCS#7 SignedData (RFC 2315 §9.1) holding exactly these DER values.

    ``cryptography``'s serializer refuses an empty list and arbitrary bytes; this one makes
    both, for the rejecting tests.
    """
    fields = der_integer(1) + der_tlv(0x31, b"") + der_tlv(0x30, der_oid(DATA_OID))
    if with_certificates_field:
        fields += der_tlv(0xA0, b"".join(certificates))
    fields += der_tlv(0x31, b"")
    return der_tlv(0x30, der_oid(SIGNED_DATA_OID) + der_tlv(0xA0, der_tlv(0x30, fields)))


def pkcs7_ber_indefinite(certificates: list[bytes]) -> bytes:
    """The same PKCS#7 with BER indefinite lengths on every container, as some tools write."""

    def indefinite(tag: int, content: bytes) -> bytes:
        return bytes([tag, 0x80]) + content + b"\x00\x00"

    fields = (
        der_integer(1)
        + der_tlv(0x31, b"")
        + indefinite(0x30, der_oid(DATA_OID))
        + indefinite(0xA0, b"".join(certificates))
        + der_tlv(0x31, b"")
    )
    return indefinite(0x30, der_oid(SIGNED_DATA_OID) + indefinite(0xA0, indefinite(0x30, fields)))
