"""Signed, versioned CA-list manifests: what the cloud publishes and a connector installs.

A manifest is a compact JWS (RFC 7515) signed with the cloud's Ed25519 list-signing key::

    header  {"alg": "EdDSA", "typ": "hybridge-ca-list+jwt", "kid": <RFC 7638 thumbprint>}
    payload {"iss": <cloud base URL>, "aud": <connector id, optional>, "seq": <int>,
             "iat": <unix seconds>, "certificates": [<base64 DER>, ...]}

The JOSE work (base64url segments, header registry, size limits, Ed25519 signature) is done
by ``joserfc``: Authlib 1.9 deprecates its own ``authlib.jose`` in favour of ``joserfc``, the
JOSE library by the same authors, which Authlib now depends on. What is written here is only
the policy a connector applies on top of a valid signature: the one algorithm, the type, the
sequence, the audience and the clock skew.

``"alg": "EdDSA"`` is the name agreed in docs/registration.md (RFC 8037). RFC 9864 deprecates
the polymorphic "EdDSA" in favour of the fully-specified "Ed25519"; the polymorphism cannot
hurt here because the verifier pins the key type to Ed25519, and the algorithm name lives in
this module only (``ALGORITHM``) should the protocol move to "Ed25519".

Errors (each has a stable ``reason`` the caller can report back to the cloud)::

    ManifestError                     (HybridgeError)
     ├── ManifestMalformed            reason "malformed"
     ├── ManifestBadSignature         reason "bad_signature"
     ├── ManifestWrongAlgorithm       reason "wrong_algorithm"
     ├── ManifestStaleSequence        reason "stale_sequence"
     ├── ManifestWrongAudience        reason "wrong_audience"
     └── ManifestFromFuture           reason "from_future"

Pure: no clock (``now`` is a parameter), no disk, no socket.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hybridge.core import jws as jose
from hybridge.core.errors import HybridgeError

# Re-exported: the cloud signs with these names.
from hybridge.core.jws import ALGORITHM as ALGORITHM
from hybridge.core.jws import key_id as key_id

MANIFEST_TYPE = "hybridge-ca-list+jwt"
#: How far ``iat`` may lie ahead of the verifier's clock (seconds); NTP-synced hosts are
#: within a second, five minutes is the skew Kerberos and most JWT libraries allow.
DEFAULT_MAX_SKEW = 300
#: Largest payload accepted (bytes of base64url). Mozilla's whole root set (~150 roots) is
#: ~300 KB; 4 MiB bounds the work a forged manifest can cause before its signature fails.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
#: Most certificates one manifest may carry.
MAX_CERTIFICATES = 1000

_PAYLOAD_KEYS = frozenset({"iss", "aud", "seq", "iat", "certificates"})


class ManifestError(HybridgeError):
    """A CA-list manifest was refused; ``reason`` names why in one stable word."""

    reason: ClassVar[str] = "malformed"


class ManifestMalformed(ManifestError):
    """Not a compact JWS of our type, or a payload that does not follow the schema."""

    reason = "malformed"


class ManifestBadSignature(ManifestError):
    """The signature does not verify with the list-signing key learned at registration."""

    reason = "bad_signature"


class ManifestWrongAlgorithm(ManifestError):
    """The header names an algorithm other than EdDSA (``none``, ``HS256``, ``RS256``...)."""

    reason = "wrong_algorithm"


class ManifestStaleSequence(ManifestError):
    """The sequence number is not above the one installed (a replay or a rollback)."""

    reason = "stale_sequence"


class ManifestWrongAudience(ManifestError):
    """The manifest was addressed to another connector."""

    reason = "wrong_audience"


class ManifestFromFuture(ManifestError):
    """``iat`` lies further ahead of the verifier's clock than the allowed skew."""

    reason = "from_future"


_ERRORS = jose.JwsErrors(
    malformed=ManifestMalformed,
    wrong_algorithm=ManifestWrongAlgorithm,
    bad_signature=ManifestBadSignature,
)


@dataclass(frozen=True)
class CaListManifest:
    """One version of a cloud's CA list: who issued it, its sequence, when, and the roots.

    ``certificates`` are DER bytes, in the order the cloud publishes them. ``audience`` is
    the connector id on a per-connector delivery, ``None`` on a broadcast.
    """

    issuer: str
    sequence: int
    issued_at: int
    certificates: tuple[bytes, ...]
    audience: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ManifestMalformed(f"issuer must be a non-empty string, got {self.issuer!r}")
        # bool is an int in Python; a JSON true must not pass for sequence 1.
        if type(self.sequence) is not int or self.sequence < 1:
            raise ManifestMalformed(f"sequence must be an integer >= 1, got {self.sequence!r}")
        if type(self.issued_at) is not int or self.issued_at < 0:
            raise ManifestMalformed(
                f"issued_at must be non-negative unix seconds, got {self.issued_at!r}"
            )
        if self.audience is not None and (not isinstance(self.audience, str) or not self.audience):
            raise ManifestMalformed(
                f"audience must be a non-empty string or absent, got {self.audience!r}"
            )
        if len(self.certificates) > MAX_CERTIFICATES:
            raise ManifestMalformed(
                f"{len(self.certificates)} certificates; at most {MAX_CERTIFICATES} accepted"
            )
        for index, der in enumerate(self.certificates):
            if not isinstance(der, bytes) or not der:
                raise ManifestMalformed(f"certificate #{index} must be non-empty DER bytes")


def sign_manifest(manifest: CaListManifest, private_key: Ed25519PrivateKey) -> str:
    """Serialize ``manifest`` as a compact JWS signed by ``private_key``.

    Returns:
        The compact serialization (three base64url segments joined by dots).
    """
    payload: dict[str, Any] = {
        "iss": manifest.issuer,
        "seq": manifest.sequence,
        "iat": manifest.issued_at,
        "certificates": [base64.b64encode(der).decode("ascii") for der in manifest.certificates],
    }
    if manifest.audience is not None:
        payload["aud"] = manifest.audience
    return jose.sign(payload, private_key, typ=MANIFEST_TYPE)


def _decode_payload(raw: bytes) -> CaListManifest:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestMalformed(f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestMalformed(f"payload must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - _PAYLOAD_KEYS
    if unknown:
        raise ManifestMalformed(
            f"unknown payload members {sorted(unknown)!r}; accepted: {sorted(_PAYLOAD_KEYS)!r}"
        )
    missing = {"iss", "seq", "iat", "certificates"} - set(data)
    if missing:
        raise ManifestMalformed(f"payload lacks {sorted(missing)!r}")
    encoded = data["certificates"]
    if not isinstance(encoded, list) or not all(isinstance(item, str) for item in encoded):
        raise ManifestMalformed("certificates must be a list of base64 strings")
    certificates = []
    for index, item in enumerate(encoded):
        try:
            certificates.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ManifestMalformed(f"certificate #{index} is not base64: {item[:40]!r}") from exc
    return CaListManifest(
        issuer=data["iss"],
        sequence=data["seq"],
        issued_at=data["iat"],
        certificates=tuple(certificates),
        audience=data.get("aud"),
    )


def read_unverified(token: str) -> tuple[dict[str, Any], CaListManifest]:
    """Header and manifest of ``token`` WITHOUT checking the signature: for display only.

    Raises:
        ManifestMalformed: not a compact JWS, or a payload outside the schema.
    """
    header, payload = jose.read_unverified(
        token, max_payload=MAX_PAYLOAD_BYTES, malformed=ManifestMalformed
    )
    return header, _decode_payload(payload)


def verify_manifest(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    now: datetime,
    installed_sequence: int | None = None,
    audience: str | None = None,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> CaListManifest:
    """Check ``token`` and return the manifest it carries.

    Checks, in order: the JWS shape and header; the algorithm (EdDSA only); the signature
    with ``public_key``; the payload schema; the audience (when the manifest names one it
    must equal ``audience``); ``iat`` not beyond ``now + max_skew``; the sequence above
    ``installed_sequence``. The certificates themselves are left to the trust store.

    Raises:
        ManifestMalformed, ManifestWrongAlgorithm, ManifestBadSignature,
        ManifestWrongAudience, ManifestFromFuture, ManifestStaleSequence.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(f"list-signing key must be Ed25519, got {type(public_key).__name__}")
    payload = jose.open_verified(
        token,
        public_key,
        typ=MANIFEST_TYPE,
        max_payload=MAX_PAYLOAD_BYTES,
        errors=_ERRORS,
        what="manifest",
    )
    manifest = _decode_payload(payload)
    if manifest.audience is not None and manifest.audience != audience:
        raise ManifestWrongAudience(
            f"manifest addressed to {manifest.audience!r}, this connector is {audience!r}"
        )
    now_seconds = int(now.timestamp())
    if manifest.issued_at > now_seconds + max_skew:
        raise ManifestFromFuture(
            f"issued at {manifest.issued_at!r}, {manifest.issued_at - now_seconds}s ahead of "
            f"this clock; at most {max_skew}s accepted"
        )
    # Rollback protection: an old, validly signed list must never replace a newer one.
    if installed_sequence is not None and manifest.sequence <= installed_sequence:
        raise ManifestStaleSequence(
            f"sequence {manifest.sequence!r} is not above the installed {installed_sequence!r}"
        )
    return manifest
