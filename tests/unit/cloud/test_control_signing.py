"""cloud.control_signing: the fan-out signer's tokens are exactly what joserfc verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hybridge.cloud.control_signing import FanoutSigner
from hybridge.core.manifest import (
    CaListManifest,
    ManifestBadSignature,
    ManifestStaleSequence,
    ManifestWrongAudience,
    read_unverified,
    sign_manifest,
    verify_manifest,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
KEY = Ed25519PrivateKey.generate()
CERTS = (b"\x30\x82\x01\x00" + b"\x01" * 256, b"\x30\x03\x02\x01\x05")


def signer(key: Ed25519PrivateKey = KEY) -> FanoutSigner:
    return FanoutSigner(key, issuer="https://cloud.test", sequence=7, certificates=CERTS)


def test_token_verifies_with_joserfc_and_matches_sign_manifest() -> None:
    token = signer().sign("connector-a", int(NOW.timestamp()))
    manifest = verify_manifest(
        token, KEY.public_key(), now=NOW, installed_sequence=6, audience="connector-a"
    )
    expected = CaListManifest("https://cloud.test", 7, int(NOW.timestamp()), CERTS, "connector-a")
    assert manifest == expected
    reference = sign_manifest(expected, KEY)
    # Same header and payload as the library path (Ed25519 signatures are deterministic).
    assert token == reference
    assert read_unverified(token)[0]["typ"] == "hybridge-ca-list+jwt"


def test_token_for_one_connector_is_refused_by_another() -> None:
    token = signer().sign("connector-a", int(NOW.timestamp()))
    with pytest.raises(ManifestWrongAudience):
        verify_manifest(token, KEY.public_key(), now=NOW, audience="connector-b")


def test_token_of_another_key_and_stale_sequence_are_refused() -> None:
    token = signer(Ed25519PrivateKey.generate()).sign("connector-a", int(NOW.timestamp()))
    with pytest.raises(ManifestBadSignature):
        verify_manifest(token, KEY.public_key(), now=NOW, audience="connector-a")
    token = signer().sign("connector-a", int(NOW.timestamp()))
    with pytest.raises(ManifestStaleSequence):
        verify_manifest(
            token, KEY.public_key(), now=NOW, installed_sequence=7, audience="connector-a"
        )


def test_token_with_characters_json_escapes_still_matches_sign_manifest() -> None:
    # The payload is assembled from pre-dumped pieces: quoting and escaping must come out
    # exactly as joserfc's path writes them, or the connector would refuse the signature.
    issuer, audience = 'https://cloud.test/é"\\', 'connector-"é\\/\n'
    key_signer = FanoutSigner(KEY, issuer=issuer, sequence=12345, certificates=CERTS)
    token = key_signer.sign(audience, int(NOW.timestamp()))
    expected = CaListManifest(issuer, 12345, int(NOW.timestamp()), CERTS, audience)
    assert token == sign_manifest(expected, KEY)
    manifest = verify_manifest(token, KEY.public_key(), now=NOW, audience=audience)
    assert manifest == expected
    with pytest.raises(ManifestWrongAudience):
        verify_manifest(token, KEY.public_key(), now=NOW, audience="connector-")
