"""Compact JWS (RFC 7515) signed with Ed25519, as every signed cloud message uses it.

CA-list manifests (``core.manifest``) and control commands (``core.control_commands``) are
both compact JWS signed by the cloud's list-signing key; they differ only in their ``typ``
and payload. This module is the one place that signs and opens them, so the header rules
below hold for both. Each caller passes the exception classes it raises, so its own error
tree (and the reasons it reports back to the cloud) stays intact.

Pure: no clock, no disk, no socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import OKPKey

# RFC 8037 "EdDSA". RFC 9864 deprecates it in favour of "Ed25519"; the registration
# protocol (docs/registration.md) agreed on "EdDSA", so the name stays until both sides move.
ALGORITHM = "EdDSA"
HEADER_KEYS = frozenset({"alg", "typ", "kid"})


@dataclass(frozen=True)
class JwsErrors:
    """The exception classes a caller raises for each way a token can fail."""

    malformed: type[Exception]
    wrong_algorithm: type[Exception]
    bad_signature: type[Exception]


class _Registry(jws.JWSRegistry):
    """joserfc's registry allowing exactly ``ALGORITHM``.

    joserfc warns (``SecurityWarning``) on every use of "EdDSA" because of RFC 9864; the
    lookup is done here without the warning rather than by a process-wide warnings filter.
    """

    def get_alg(self, name: str) -> Any:  # joserfc's JWSAlgModel is not re-exported
        if name != ALGORITHM or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of {name!r} is not allowed")
        return self.algorithms[name]


def _registry(max_payload: int) -> jws.JWSRegistry:
    registry = _Registry(algorithms=[ALGORITHM])
    registry.max_payload_length = max_payload
    return registry


def key_id(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of ``public_key``: the ``kid``."""
    return OKPKey.import_key(public_key).thumbprint()


def sign(payload: dict[str, Any], private_key: Ed25519PrivateKey, *, typ: str) -> str:
    """``payload`` as canonical JSON in a compact JWS signed by ``private_key``."""
    key = OKPKey.import_key(private_key)
    header = {"alg": ALGORITHM, "typ": typ, "kid": key.thumbprint()}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return jws.serialize_compact(header, body, key, registry=_registry(len(body) + 1))


def open_verified(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    typ: str,
    max_payload: int,
    errors: JwsErrors,
    what: str,
) -> bytes:
    """The payload of ``token`` once its header and signature are checked.

    Raises ``errors.malformed`` (not a compact JWS, wrong ``typ``, extra header members),
    ``errors.wrong_algorithm`` or ``errors.bad_signature``; ``what`` names the token in
    messages ("manifest", "command").
    """
    registry = _registry(max_payload)
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=registry)
    except (JoseError, UnicodeEncodeError, ValueError) as exc:
        raise errors.malformed(f"not a compact JWS: {exc}") from exc
    header = obj.headers()
    alg = header.get("alg")
    # RFC 8725 §3.1: the verifier decides the algorithm; "none", HMAC with the public key
    # as secret, or any other name is refused before a key is ever touched.
    if alg != ALGORITHM:
        raise errors.wrong_algorithm(f"algorithm {alg!r} refused; only {ALGORITHM!r} accepted")
    # RFC 8725 §3.11: explicit typing, so no other token signed by this key (a command for
    # a manifest, or the reverse) passes as this one.
    if header.get("typ") != typ:
        raise errors.malformed(f"type {header.get('typ')!r}; expected {typ!r}")
    extra = set(header) - HEADER_KEYS
    if extra:
        # No "crit", "b64" (RFC 7797), "jwk" or "x5u": a header must not choose the key.
        raise errors.malformed(f"unexpected header members {sorted(extra)!r}")
    try:
        valid = jws.validate_compact(obj, OKPKey.import_key(public_key), registry=registry)
    except JoseError as exc:
        raise errors.bad_signature(f"signature check failed: {exc}") from exc
    if not valid:
        raise errors.bad_signature(
            f"signature does not verify with list-signing key {key_id(public_key)!r} "
            f"({what} names key {header.get('kid')!r})"
        )
    payload: bytes = obj.payload
    return payload


def read_unverified(
    token: str, *, max_payload: int, malformed: type[Exception]
) -> tuple[dict[str, Any], bytes]:
    """Header and payload of ``token`` WITHOUT checking the signature: for display only."""
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_registry(max_payload))
    except (JoseError, UnicodeEncodeError, ValueError) as exc:
        raise malformed(f"not a compact JWS: {exc}") from exc
    payload: bytes = obj.payload
    return dict(obj.headers()), payload
