"""describe(): each field checked against the certificate we built and against openssl."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest

import certs
from hybridge.core.pki import CertificateInfo, describe, fingerprint_sha256, load_certificates


def openssl_fields(tmp_path: Path, pem: bytes) -> dict[str, str]:
    """What ``openssl x509`` says about the certificate: an independent parser."""
    path = tmp_path / "cert.pem"
    path.write_bytes(pem)
    out = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(path),
            "-noout",
            "-serial",
            "-fingerprint",
            "-sha256",
            "-subject",
            "-issuer",
            "-nameopt",
            "RFC2253",
            "-text",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    fields: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("serial="):
            fields["serial"] = line.removeprefix("serial=").lower()
        elif line.startswith("sha256 Fingerprint=") or line.startswith("SHA256 Fingerprint="):
            fields["sha256"] = line.split("=", 1)[1].replace(":", "").lower()
        elif line.startswith("subject="):
            fields["subject"] = line.removeprefix("subject=")
        elif line.startswith("issuer="):
            fields["issuer"] = line.removeprefix("issuer=")
        elif "Signature Algorithm:" in line and "signature" not in fields:
            fields["signature"] = line.split(":", 1)[1].strip()
    return fields


def test_rsa_ca_fields(tmp_path: Path, root: certs.Issued) -> None:
    info = describe(root.certificate)
    assert info.subject == "CN=Hybridge Test Root,O=Hybridge Tests,C=US"
    assert info.issuer == info.subject
    assert info.serial == format(root.certificate.serial_number, "x")
    assert info.not_before == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert info.not_after == dt.datetime(2035, 1, 1, tzinfo=dt.UTC)
    assert info.not_before.utcoffset() == dt.timedelta(0)
    assert info.fingerprint_sha256 == hashlib.sha256(root.der).hexdigest()
    assert info.fingerprint_sha1 == hashlib.sha1(root.der, usedforsecurity=False).hexdigest()
    assert (info.key_type, info.key_size, info.key) == ("RSA", 2048, "RSA 2048")
    assert info.signature_algorithm == "sha256WithRSAEncryption"
    assert (info.is_ca, info.path_length) == (True, None)
    assert info.key_usage == ("key_cert_sign", "crl_sign")
    assert info.self_signed is True
    assert info.version == 3

    theirs = openssl_fields(tmp_path, root.pem)
    assert theirs["sha256"] == info.fingerprint_sha256
    assert theirs["serial"].lstrip("0") == info.serial
    assert theirs["subject"] == info.subject
    assert theirs["signature"] == info.signature_algorithm


def test_intermediate_and_leaf(intermediate: certs.Issued, leaf: certs.Issued) -> None:
    middle = describe(intermediate.certificate)
    assert middle.issuer == "CN=Hybridge Test Root,O=Hybridge Tests,C=US"
    assert (middle.is_ca, middle.path_length, middle.self_signed) == (True, 0, False)
    assert middle.key == "EC P-256"
    assert middle.signature_algorithm == "sha256WithRSAEncryption"
    end = describe(leaf.certificate)
    assert (end.is_ca, end.path_length, end.self_signed) == (False, None, False)
    assert end.key_usage == ("digital_signature",)
    assert end.signature_algorithm == "ecdsa-with-SHA256"


@pytest.mark.parametrize(
    ("options", "key_type", "key_size", "key", "signature"),
    [
        ({"key_type": "rsa", "key_size": 3072}, "RSA", 3072, "RSA 3072", "sha256WithRSAEncryption"),
        ({"key_type": "ec", "key_size": 256}, "EC", 256, "EC P-256", "ecdsa-with-SHA256"),
        (
            {"key_type": "ec", "key_size": 384, "signature_hash": "sha384"},
            "EC",
            384,
            "EC P-384",
            "ecdsa-with-SHA384",
        ),
        (
            {"key_type": "ec", "key_size": 521, "signature_hash": "sha512"},
            "EC",
            521,
            "EC P-521",
            "ecdsa-with-SHA512",
        ),
        ({"key_type": "ed25519"}, "Ed25519", None, "Ed25519", "ED25519"),
        ({"key_type": "ed448"}, "Ed448", None, "Ed448", "ED448"),
        ({"key_type": "dsa", "key_size": 1024}, "DSA", 1024, "DSA 1024", "dsa_with_SHA256"),
        (
            {"key_type": "rsa", "signature_hash": "sha1"},
            "RSA",
            2048,
            "RSA 2048",
            "sha1WithRSAEncryption",
        ),
        (
            {"key_type": "rsa", "signature_hash": "md5"},
            "RSA",
            2048,
            "RSA 2048",
            "md5WithRSAEncryption",
        ),
        ({"key_type": "ec", "signature_hash": "sha1"}, "EC", 256, "EC P-256", "ecdsa-with-SHA1"),
        ({"key_type": "dsa", "signature_hash": "sha1"}, "DSA", 2048, "DSA 2048", "dsaWithSHA1"),
    ],
)
def test_key_and_signature_names_match_openssl(
    tmp_path: Path,
    options: dict[str, object],
    key_type: str,
    key_size: int | None,
    key: str,
    signature: str,
) -> None:
    issued = certs.build("Key Test", **options)  # type: ignore[arg-type]
    info = describe(issued.certificate)
    assert (info.key_type, info.key_size, info.key) == (key_type, key_size, key)
    assert info.signature_algorithm == signature
    assert info.self_signed is True  # the re-signed ones verify too
    assert openssl_fields(tmp_path, issued.pem)["signature"] == signature


def test_no_basic_constraints_is_not_a_ca() -> None:
    info = describe(certs.build("No BC", basic_constraints=False).certificate)
    assert (info.is_ca, info.path_length) == (False, None)


def test_no_key_usage_is_an_empty_tuple() -> None:
    assert describe(certs.build("No KU", key_usage=()).certificate).key_usage == ()


def test_key_usage_in_rfc_order_with_encipher_only() -> None:
    issued = certs.build(
        "KU", key_usage=("crl_sign", "key_agreement", "digital_signature", "encipher_only")
    )
    assert describe(issued.certificate).key_usage == (
        "digital_signature",
        "key_agreement",
        "crl_sign",
        "encipher_only",
    )


def test_version_1_self_signed_root_is_taken_as_a_ca() -> None:
    info = describe(certs.build("V1 Root", key_type="rsa", version=1).certificate)
    assert info.version == 1
    assert (info.is_ca, info.path_length, info.self_signed) == (True, None, True)
    assert info.key_usage == ()


def test_version_1_certificate_issued_by_another_is_not_a_ca(root: certs.Issued) -> None:
    issued = certs.build("V1 Leaf", issuer=root, key=certs.new_key("ec"), version=1)
    info = describe(issued.certificate)
    assert (info.version, info.is_ca, info.self_signed) == (1, False, False)


def test_tampered_self_signed_certificate_is_not_self_signed(root: certs.Issued) -> None:
    tampered = load_certificates(certs.tamper_signature(root.certificate))[0]
    assert tampered.certificate is not None  # it parses; only the signature is wrong
    info = describe(tampered.certificate)
    assert info.subject == info.issuer
    assert info.self_signed is False


def test_same_name_signed_by_another_key_is_not_self_signed(root: certs.Issued) -> None:
    impostor_signer = certs.Issued(root.certificate, certs.new_key("rsa"))
    issued = certs.build(
        "Hybridge Test Root", issuer=impostor_signer, key=certs.cached_key("rsa", 2048)
    )
    info = describe(issued.certificate)
    assert info.subject == info.issuer
    assert info.self_signed is False


@pytest.mark.parametrize(("serial", "shown"), [(-5, "-5"), (0, "0"), (-256, "-100")])
def test_non_positive_serials(serial: int, shown: str) -> None:
    parsed = load_certificates(certs.build("Odd Serial", serial=serial).der)[0]
    assert parsed.certificate is not None
    assert describe(parsed.certificate).serial == shown


@pytest.mark.parametrize(
    ("filename", "subject", "serial", "sha256", "version", "not_after"),
    [
        (
            "baltimore-cybertrust-root.pem",
            "CN=Baltimore CyberTrust Root,OU=CyberTrust,O=Baltimore,C=IE",
            "20000b9",
            "16af57a9f676b0ab126095aa5ebadef22ab31119d644ac95cd4b93dbf3f26aeb",
            3,
            dt.datetime(2025, 5, 12, 23, 59, tzinfo=dt.UTC),
        ),
        (
            "go-daddy-class-2-ca.pem",
            "OU=Go Daddy Class 2 Certification Authority,O=The Go Daddy Group\\, Inc.,C=US",
            "0",
            "c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4",
            3,
            dt.datetime(2034, 6, 29, 17, 6, 20, tzinfo=dt.UTC),
        ),
        (
            "verisign-class-3-g3-v1.pem",
            "CN=VeriSign Class 3 Public Primary Certification Authority - G3,"
            "OU=(c) 1999 VeriSign\\, Inc. - For authorized use only,"
            "OU=VeriSign Trust Network,O=VeriSign\\, Inc.,C=US",
            "9b7e0649a33e62b9d5ee90487129ef57",
            "eb04cf5eb1f39afa762f2bb120f296cba520c1b97db1589565b81cb9a17b7244",
            1,
            dt.datetime(2036, 7, 16, 23, 59, 59, tzinfo=dt.UTC),
        ),
        (
            "ec-acc.pem",
            None,
            "-11d4c2142bde21eb579d53fb0c223bff",
            "88497f01602f3154246ae28c4d5aef10f1d87ebb76626f4ae0b7f95ba7968799",
            3,
            dt.datetime(2031, 1, 7, 22, 59, 59, tzinfo=dt.UTC),
        ),
    ],
)
def test_real_old_roots(
    filename: str,
    subject: str | None,
    serial: str,
    sha256: str,
    version: int,
    not_after: dt.datetime,
) -> None:
    parsed = load_certificates(certs.real_root(filename))
    assert len(parsed) == 1
    assert parsed[0].certificate is not None
    info = describe(parsed[0].certificate)
    if subject is not None:
        assert info.subject == subject
    assert info.serial == serial
    assert info.fingerprint_sha256 == sha256  # the copy is genuine, byte for byte
    assert info.version == version
    assert info.not_after == not_after
    assert info.self_signed is True  # and its self-signature verifies
    assert info.is_ca is True
    assert info.key == "RSA 2048"


def test_fingerprint_sha256_is_lowercase_hex(root: certs.Issued) -> None:
    value = fingerprint_sha256(root.der)
    assert value == hashlib.sha256(root.der).hexdigest()
    assert len(value) == 64
    assert value == value.lower()


def test_certificate_info_is_validated(root: certs.Issued) -> None:
    info = describe(root.certificate)
    fields = dict(info.__dict__)
    with pytest.raises(ValueError, match="not_before must be timezone-aware"):
        CertificateInfo(**{**fields, "not_before": dt.datetime(2025, 1, 1)})
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint: 'AB'"):
        CertificateInfo(**{**fields, "fingerprint_sha256": "AB"})
    with pytest.raises(ValueError, match="not a SHA-1 fingerprint"):
        CertificateInfo(**{**fields, "fingerprint_sha1": info.fingerprint_sha256})
