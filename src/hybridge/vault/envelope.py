"""Envelope encryption: secrets under a data key (DEK), the data key under a master key (KEK).

Choices, each with its reason:

- Secrets: AES-256-GCM (NIST SP 800-38D) with a fresh 96-bit random nonce per encryption.
  A vault holds hundreds of secrets rewritten a few times a year, far below the 2^32
  encryptions per key that SP 800-38D §8.3 allows for random nonces.
- Associated data binds each ciphertext to its row: format tag, secret id, purpose, record id,
  version and data-key id, each length-prefixed so no two field lists encode the same bytes.
  Moving a ciphertext to another row, another purpose or an older version fails its tag.
- Wrapping the data key: AES Key Wrap (RFC 3394, NIST SP 800-38F "KW") rather than GCM:
  it was made for wrapping keys, it is deterministic, so there is no nonce to get wrong
  however often keys are rotated, its integrity check tells a wrong master key apart from
  a good one, and it is the mechanism HSMs and KMSs expose (PKCS#11 CKM_AES_KEY_WRAP), so a
  future provider can unwrap inside the HSM. KW has no associated data; the binding GCM
  would give is provided instead by the key id stored beside each wrap and by the data-key
  id inside every secret's associated data (a wrapped key moved to another row decrypts to
  a key under which that row's secrets fail their tags).
- Key ids: 8 bytes of SHA-256 over a domain-separation label and the key, in hex. Enough to
  tell keys apart in an error message; they reveal nothing usable about a 256-bit key.

Nothing here is hand-written cryptography: it is ``cryptography``'s AESGCM and aes_key_wrap.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from hybridge.vault.secret import Secret

KEY_BYTES = 32  # AES-256 for both the master key and the data key
NONCE_BYTES = 12  # SP 800-38D §8.2.2: 96-bit random IVs
WRAP_ALGORITHM = "aes-kw-rfc3394"
CIPHER_ALGORITHM = "aes-256-gcm"
_AAD_TAG = b"hybridge-vault/v1"
_KEY_ID_LABEL = b"hybridge-vault master key id\x00"


class AuthenticationFailed(Exception):
    """Internal: a tag or a key-wrap integrity check failed. Callers translate it."""


def key_id(key: Secret) -> str:
    """The public id of a master key: 16 hex characters."""
    return hashlib.sha256(_KEY_ID_LABEL + key.reveal()).digest()[:8].hex()


def new_key() -> Secret:
    """A fresh random 256-bit key from the OS CSPRNG."""
    return Secret(os.urandom(KEY_BYTES))


def secret_aad(
    *, secret_id: str, purpose: str, record_id: str, version: int, data_key_id: int
) -> bytes:
    """The associated data that binds a ciphertext to its row."""
    parts = [
        _AAD_TAG,
        secret_id.encode(),
        purpose.encode(),
        record_id.encode(),
        str(version).encode(),
        str(data_key_id).encode(),
    ]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def seal(data_key: Secret, plaintext: Secret, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``plaintext``; returns ``(nonce, ciphertext_with_tag)``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(data_key.reveal()).encrypt(nonce, plaintext.reveal(), aad)


def unseal(data_key: Secret, nonce: bytes, ciphertext: bytes, aad: bytes) -> Secret:
    """Decrypt and authenticate. Raises ``AuthenticationFailed`` on any mismatch."""
    if len(nonce) != NONCE_BYTES:
        raise AuthenticationFailed(f"nonce is {len(nonce)} bytes, expected {NONCE_BYTES}")
    try:
        return Secret(AESGCM(data_key.reveal()).decrypt(nonce, ciphertext, aad))
    except InvalidTag as exc:
        raise AuthenticationFailed("authentication tag does not match") from exc


def wrap(master_key: Secret, data_key: Secret) -> bytes:
    """The data key wrapped under the master key (RFC 3394)."""
    return aes_key_wrap(master_key.reveal(), data_key.reveal())


def unwrap(master_key: Secret, wrapped: bytes) -> Secret:
    """Unwrap a data key. Raises ``AuthenticationFailed`` if the integrity check fails."""
    try:
        key = aes_key_unwrap(master_key.reveal(), wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise AuthenticationFailed("key-wrap integrity check failed") from exc
    if len(key) != KEY_BYTES:
        raise AuthenticationFailed(f"unwrapped key is {len(key)} bytes, expected {KEY_BYTES}")
    return Secret(key)
