"""Per-connector manifests for a fan-out: one version, thousands of audiences, fast.

A push carries the current CA-list version signed for one connector (``aud`` = its id, the
same manifest format as ``core.manifest.sign_manifest``, verified on the connector by
``core.manifest.verify_manifest`` with joserfc). ``sign_manifest`` spends ~0.4-0.8 ms per
token in joserfc's generic machinery (key import, thumbprint, header registry) on top of
the Ed25519 signature itself (~0.1 ms for a few KiB); a fan-out to 10,000 connectors
signs 10,000 tokens, so that overhead alone would exceed the 5 s goal of issue 5.

``FanoutSigner`` therefore does the JWS Compact Serialization (RFC 7515 §7.1) by hand for
this one fixed shape: the header segment and the payload's members other than ``aud`` and
``iat`` are encoded once per version, and each connector costs two tiny JSON dumps, one
base64url and one Ed25519 signature (pyca/cryptography). Nothing else is hand-written: the
verifier is still joserfc, and ``tests/unit/cloud/test_control_signing.py`` checks that
every token verifies there and equals the token ``sign_manifest`` would produce.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hybridge.core.manifest import ALGORITHM, MANIFEST_TYPE, key_id


def _b64url(data: bytes) -> str:
    # RFC 7515 §2: base64url without padding.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FanoutSigner:
    """Signs one CA-list version for any number of connectors."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        issuer: str,
        sequence: int,
        certificates: Sequence[bytes],
    ) -> None:
        self._key = private_key
        self.sequence = sequence
        encoded = [base64.b64encode(der).decode("ascii") for der in certificates]
        # The member order joserfc writes (alg, typ, kid), so both paths give equal tokens.
        header = {"alg": ALGORITHM, "typ": MANIFEST_TYPE, "kid": key_id(private_key.public_key())}
        self._header = _b64url(json.dumps(header, separators=(",", ":")).encode())
        # The payload is ``json.dumps(..., separators=(",", ":"), sort_keys=True)`` of
        # {aud, certificates, iat, iss, seq} (core.manifest.sign_manifest): members in that
        # order, so everything but aud and iat is dumped once here, not per connector.
        self._certificates_json = json.dumps(encoded, separators=(",", ":"))
        self._tail = (
            f',"iss":{json.dumps(issuer, separators=(",", ":"))},"seq":{json.dumps(sequence)}}}'
        )

    def sign(self, audience: str, issued_at: int) -> str:
        """The compact JWS of this version for ``audience``, issued at ``issued_at``."""
        # Same members, order and separators as core.manifest.sign_manifest (the unit tests
        # compare the whole token with it).
        payload = (
            f'{{"aud":{json.dumps(audience)},"certificates":{self._certificates_json},'
            f'"iat":{json.dumps(issued_at)}{self._tail}'
        )
        body = _b64url(payload.encode("ascii"))
        signing_input = f"{self._header}.{body}"
        signature = self._key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"
