"""AES-256-GCM with associated data, RFC 3394 key wrap, key ids."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridge.vault import Secret, envelope
from hybridge.vault.envelope import AuthenticationFailed

FIELDS = {
    "secret_id": "0" * 32,
    "purpose": "exchange.impersonation",
    "record_id": "config-1",
    "version": 1,
    "data_key_id": 1,
}
PLAIN = Secret(b"Tr0ub4dor&3-vault-test")


def test_seal_unseal_round_trip_with_fresh_nonces() -> None:
    key = envelope.new_key()
    aad = envelope.secret_aad(**FIELDS)  # type: ignore[arg-type]
    nonce1, ct1 = envelope.seal(key, PLAIN, aad)
    nonce2, ct2 = envelope.seal(key, PLAIN, aad)
    assert len(nonce1) == 12
    assert nonce1 != nonce2 and ct1 != ct2  # a fresh 96-bit nonce every time
    assert PLAIN.reveal() not in ct1
    assert envelope.unseal(key, nonce1, ct1, aad) == PLAIN


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("secret_id", "1" * 32),
        ("purpose", "connector.private_key"),
        ("record_id", "config-2"),
        ("version", 2),
        ("data_key_id", 2),
    ],
)
def test_changing_any_bound_field_fails_authentication(field: str, other: object) -> None:
    key = envelope.new_key()
    nonce, ct = envelope.seal(key, PLAIN, envelope.secret_aad(**FIELDS))  # type: ignore[arg-type]
    moved = dict(FIELDS, **{field: other})
    with pytest.raises(AuthenticationFailed, match=r"^authentication tag does not match$"):
        envelope.unseal(key, nonce, ct, envelope.secret_aad(**moved))  # type: ignore[arg-type]


def test_associated_data_fields_cannot_be_shifted_between_each_other() -> None:
    # Length prefixes: ("ab", "c") and ("a", "bc") must not encode the same bytes.
    one = envelope.secret_aad(
        secret_id="0" * 32, purpose="ab", record_id="c", version=1, data_key_id=1
    )
    two = envelope.secret_aad(
        secret_id="0" * 32, purpose="a", record_id="bc", version=1, data_key_id=1
    )
    assert one != two


def test_wrong_data_key_and_flipped_bits_fail() -> None:
    key = envelope.new_key()
    aad = envelope.secret_aad(**FIELDS)  # type: ignore[arg-type]
    nonce, ct = envelope.seal(key, PLAIN, aad)
    with pytest.raises(AuthenticationFailed, match=r"^authentication tag does not match$"):
        envelope.unseal(envelope.new_key(), nonce, ct, aad)
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(AuthenticationFailed, match=r"^authentication tag does not match$"):
        envelope.unseal(key, nonce, flipped, aad)
    with pytest.raises(AuthenticationFailed, match=r"^nonce is 11 bytes, expected 12$"):
        envelope.unseal(key, nonce[:11], ct, aad)


def test_key_wrap_round_trip_is_rfc3394() -> None:
    kek, dek = envelope.new_key(), envelope.new_key()
    wrapped = envelope.wrap(kek, dek)
    assert len(wrapped) == 40  # RFC 3394: n+1 64-bit blocks for a 256-bit key
    assert wrapped == aes_key_wrap(kek.reveal(), dek.reveal())  # deterministic, standard
    assert envelope.unwrap(kek, wrapped) == dek


def test_unwrap_under_wrong_key_or_altered_wrap_fails() -> None:
    kek, dek = envelope.new_key(), envelope.new_key()
    wrapped = envelope.wrap(kek, dek)
    with pytest.raises(AuthenticationFailed, match=r"^key-wrap integrity check failed$"):
        envelope.unwrap(envelope.new_key(), wrapped)
    with pytest.raises(AuthenticationFailed, match=r"^key-wrap integrity check failed$"):
        envelope.unwrap(kek, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    # A 128-bit key wrapped correctly is still not a data key of ours.
    with pytest.raises(AuthenticationFailed, match=r"^unwrapped key is 16 bytes, expected 32$"):
        envelope.unwrap(kek, aes_key_wrap(kek.reveal(), os.urandom(16)))


def test_key_id_is_stable_distinct_and_not_the_key() -> None:
    key = envelope.new_key()
    kid = envelope.key_id(key)
    assert kid == envelope.key_id(Secret(key.reveal()))
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert kid != envelope.key_id(envelope.new_key())
    assert kid not in key.reveal().hex()


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=512), flip=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_plaintext_round_trips_and_any_flipped_bit_fails(
    plaintext: bytes, flip: int, bit: int
) -> None:
    key = envelope.new_key()
    aad = envelope.secret_aad(**FIELDS)  # type: ignore[arg-type]
    nonce, ct = envelope.seal(key, Secret(plaintext), aad)
    assert envelope.unseal(key, nonce, ct, aad).reveal() == plaintext
    stored = bytearray(nonce + ct)
    stored[flip % len(stored)] ^= 1 << bit
    with pytest.raises(AuthenticationFailed):
        envelope.unseal(key, bytes(stored[:12]), bytes(stored[12:]), aad)
