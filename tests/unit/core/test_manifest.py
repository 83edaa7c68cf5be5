"""CA-list manifests: sign, verify, and every way a forged or stale one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509 import load_pem_x509_certificate

from hybridge.core.manifest import (
    CaListManifest,
    ManifestBadSignature,
    ManifestError,
    ManifestFromFuture,
    ManifestMalformed,
    ManifestStaleSequence,
    ManifestWrongAlgorithm,
    ManifestWrongAudience,
    key_id,
    read_unverified,
    sign_manifest,
    verify_manifest,
)

# Tests that forge tokens call joserfc with "EdDSA" directly, which warns (RFC 9864).
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
IAT = int(NOW.timestamp())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def roots() -> tuple[bytes, ...]:
    ders = []
    for _ in range(2):
        pem = trustme.CA().cert_pem.bytes()
        cert = load_pem_x509_certificate(pem)
        ders.append(cert.public_bytes(serialization.Encoding.DER))
    return tuple(ders)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _manifest(roots: tuple[bytes, ...], **changes: object) -> CaListManifest:
    values: dict[str, object] = {
        "issuer": "https://cloud.hybridge.test:8443",
        "sequence": 5,
        "issued_at": IAT,
        "certificates": roots,
        "audience": "conn-1",
    }
    values.update(changes)
    return CaListManifest(**values)  # type: ignore[arg-type]


def test_sign_then_verify_returns_the_same_manifest(roots, key) -> None:
    manifest = _manifest(roots)
    token = sign_manifest(manifest, key)
    got = verify_manifest(token, key.public_key(), now=NOW, installed_sequence=4, audience="conn-1")
    assert got == manifest
    header, _ = read_unverified(token)
    assert header == {
        "alg": "EdDSA",
        "typ": "hybridge-ca-list+jwt",
        "kid": key_id(key.public_key()),
    }


def test_broadcast_without_audience_is_accepted_by_any_connector(roots, key) -> None:
    token = sign_manifest(_manifest(roots, audience=None), key)
    got = verify_manifest(token, key.public_key(), now=NOW, audience="conn-9")
    assert got.audience is None


def test_first_install_has_no_installed_sequence(roots, key) -> None:
    token = sign_manifest(_manifest(roots, sequence=1), key)
    assert verify_manifest(token, key.public_key(), now=NOW, audience="conn-1").sequence == 1


def test_tampered_payload_is_bad_signature(roots, key) -> None:
    header, payload, signature = sign_manifest(_manifest(roots), key).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["certificates"] = data["certificates"][:1]  # drop a root the cloud published
    forged = ".".join([header, _b64url(json.dumps(data).encode()), signature])
    with pytest.raises(ManifestBadSignature) as info:
        verify_manifest(forged, key.public_key(), now=NOW, audience="conn-1")
    assert info.value.reason == "bad_signature"


def test_other_key_is_bad_signature(roots, key) -> None:
    token = sign_manifest(_manifest(roots), Ed25519PrivateKey.generate())
    with pytest.raises(ManifestBadSignature, match="does not verify"):
        verify_manifest(token, key.public_key(), now=NOW, audience="conn-1")


def _unsigned(alg: str, payload: dict[str, object]) -> tuple[str, str]:
    header = _b64url(json.dumps({"alg": alg, "typ": "hybridge-ca-list+jwt"}).encode())
    body = _b64url(json.dumps(payload).encode())
    return header, body


def _payload(roots: tuple[bytes, ...]) -> dict[str, object]:
    return {
        "iss": "https://evil.test",
        "seq": 99,
        "iat": IAT,
        "certificates": [base64.b64encode(d).decode() for d in roots],
    }


def test_alg_none_is_wrong_algorithm(roots, key) -> None:
    header, body = _unsigned("none", _payload(roots))
    with pytest.raises(ManifestWrongAlgorithm) as info:
        verify_manifest(f"{header}.{body}.", key.public_key(), now=NOW)
    assert info.value.reason == "wrong_algorithm"
    assert "'none'" in str(info.value)


def test_hs256_with_public_key_as_secret_is_wrong_algorithm(roots, key) -> None:
    # The classic confusion: an HMAC keyed with the (public) verification key.
    secret = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    header, body = _unsigned("HS256", _payload(roots))
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(ManifestWrongAlgorithm, match="'HS256'"):
        verify_manifest(f"{header}.{body}.{_b64url(mac)}", key.public_key(), now=NOW)


def test_stale_sequence_equal_and_lower(roots, key) -> None:
    token = sign_manifest(_manifest(roots, sequence=5), key)
    for installed in (5, 6):
        with pytest.raises(ManifestStaleSequence) as info:
            verify_manifest(
                token, key.public_key(), now=NOW, installed_sequence=installed, audience="conn-1"
            )
        assert info.value.reason == "stale_sequence"


def test_wrong_audience(roots, key) -> None:
    token = sign_manifest(_manifest(roots, audience="conn-2"), key)
    with pytest.raises(ManifestWrongAudience, match="'conn-2'") as info:
        verify_manifest(token, key.public_key(), now=NOW, audience="conn-1")
    assert info.value.reason == "wrong_audience"


def test_from_future_beyond_skew_refused_within_skew_accepted(roots, key) -> None:
    ahead = sign_manifest(_manifest(roots, issued_at=IAT + 301), key)
    with pytest.raises(ManifestFromFuture) as info:
        verify_manifest(ahead, key.public_key(), now=NOW, audience="conn-1")
    assert info.value.reason == "from_future"
    near = sign_manifest(_manifest(roots, issued_at=IAT + 300), key)
    assert (
        verify_manifest(near, key.public_key(), now=NOW, audience="conn-1").issued_at == IAT + 300
    )


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "not base64!.x.y", "é.b.c"],
)
def test_garbage_is_malformed(token: str, key) -> None:
    with pytest.raises(ManifestMalformed) as info:
        verify_manifest(token, key.public_key(), now=NOW)
    assert info.value.reason == "malformed"


def test_signed_but_wrong_type_is_malformed(roots, key) -> None:
    from joserfc import jws
    from joserfc.jwk import OKPKey

    token = jws.serialize_compact(
        {"alg": "EdDSA", "typ": "JWT"},
        json.dumps(_payload(roots)),
        OKPKey.import_key(key),
        algorithms=["EdDSA"],
    )
    with pytest.raises(ManifestMalformed, match="type 'JWT'"):
        verify_manifest(token, key.public_key(), now=NOW)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"iss": "x", "seq": True, "iat": IAT, "certificates": []}, "sequence"),
        ({"iss": "x", "seq": 0, "iat": IAT, "certificates": []}, "sequence"),
        ({"iss": "x", "seq": 1, "iat": IAT, "certificates": ["%%"]}, "not base64"),
        ({"iss": "x", "seq": 1, "iat": IAT}, "lacks"),
        ({"iss": "x", "seq": 1, "iat": IAT, "certificates": [], "jku": "x"}, "unknown"),
        ([1, 2], "JSON object"),
    ],
)
def test_signed_payload_outside_schema_is_malformed(payload, match, key) -> None:
    from joserfc import jws
    from joserfc.jwk import OKPKey

    token = jws.serialize_compact(
        {"alg": "EdDSA", "typ": "hybridge-ca-list+jwt"},
        json.dumps(payload),
        OKPKey.import_key(key),
        algorithms=["EdDSA"],
    )
    with pytest.raises(ManifestMalformed, match=match):
        verify_manifest(token, key.public_key(), now=NOW)


def test_every_refusal_is_a_manifest_error_with_a_reason() -> None:
    for cls in ManifestError.__subclasses__():
        assert cls.reason in {
            "malformed",
            "bad_signature",
            "wrong_algorithm",
            "stale_sequence",
            "wrong_audience",
            "from_future",
        }


def test_naive_time_is_a_programming_error(roots, key) -> None:
    token = sign_manifest(_manifest(roots), key)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_manifest(token, key.public_key(), now=datetime(2026, 6, 1))
