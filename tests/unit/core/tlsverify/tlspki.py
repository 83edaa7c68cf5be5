"""A small certificate factory for the tlsverify tests: real keys, real signatures.

trustme is not enough here: its leaves carry a critical SAN beside a non-empty subject
(which a WebPKI verifier refuses) and it cannot make the hostile certificates these tests
need (CN in OU, NUL in a SAN, codeSigning-only EKU, RSA-1024, 50-deep chains). Every
certificate is built with ``cryptography``'s own builder, so nothing here is mocked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (cheap enough to make one per certificate, even for 50-deep chains)."""
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def _ski(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def make_ca(
    name: str = "Test Root CA",
    *,
    issuer: Issued | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(days=365),
    not_after: dt.datetime = NOW + dt.timedelta(days=3650),
    path_length: int | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
) -> Issued:
    """A CA certificate: self-signed when ``issuer`` is None, else signed by ``issuer``."""
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(_ski(key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def make_leaf(
    issuer: Issued,
    *,
    dns: Sequence[str] = (),
    uris: Sequence[str] = (),
    ips: Sequence[str] = (),
    raw_san: bytes | None = None,
    subject: x509.Name | None = None,
    cn: str | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (SERVER_AUTH, CLIENT_AUTH),
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=60),
    key: PrivateKey | None = None,
) -> Issued:
    """An end-entity certificate signed by ``issuer``.

    ``raw_san`` is the DER of a GeneralNames SEQUENCE, for SANs cryptography refuses to
    build (a NUL inside a dNSName); it is added as an unrecognised extension with the SAN OID,
    which is exactly what a hostile CA would put on the wire.
    """
    import ipaddress

    key = key or new_key()
    if subject is None:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hybridge Tests")]
        if cn is not None:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        subject = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if raw_san is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw_san),
            critical=False,
        )
    elif names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def der_san(*dns_names: bytes) -> bytes:
    """DER of a GeneralNames SEQUENCE holding the given raw dNSName byte strings."""

    def tlv(tag: int, body: bytes) -> bytes:
        if len(body) < 128:
            return bytes([tag, len(body)]) + body
        size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
        return bytes([tag, 0x80 | len(size)]) + size + body

    # dNSName is [2] IMPLICIT IA5String: context-specific primitive tag 0x82.
    return tlv(0x30, b"".join(tlv(0x82, name) for name in dns_names))


def make_chain(depth: int, *, root: Issued | None = None) -> tuple[Issued, list[Issued]]:
    """A root and ``depth`` intermediates below it, each signed by the one above."""
    root = root or make_ca("Deep Root")
    chain: list[Issued] = []
    parent = root
    for index in range(depth):
        parent = make_ca(f"Intermediate {index}", issuer=parent)
        chain.append(parent)
    return root, chain


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key of ``bits`` bits."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
