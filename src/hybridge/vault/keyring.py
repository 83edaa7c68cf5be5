"""The data keys: which master key the vault expects, unwrapping under it, storing a new one.

Shared by the vault service, ``vault status`` and the rotation, so that "is this the right
master key" is decided in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hybridge.storage.db import Database
from hybridge.vault import envelope, models
from hybridge.vault.errors import (
    MasterKeyMismatchError,
    MasterKeyNotFoundError,
    SecretDecryptionError,
    VaultNotInitializedError,
)
from hybridge.vault.keys import MasterKey, MasterKeySource
from hybridge.vault.records import NOT_INITIALIZED as NOT_INITIALIZED_MESSAGE
from hybridge.vault.secret import Secret


@dataclass(frozen=True)
class WrapRow:
    """One row of ``vault_key_wraps`` (the wrapped key is ciphertext, safe to hold)."""

    data_key_id: int
    master_key_id: str
    state: str
    wrapped_key: bytes
    master_key_location: str


def read_wraps(session: Session) -> tuple[WrapRow, ...]:
    """Every wrap of every data key, oldest data key first."""
    rows = session.execute(
        sa.select(
            models.key_wraps.c.data_key_id,
            models.key_wraps.c.master_key_id,
            models.key_wraps.c.state,
            models.key_wraps.c.wrapped_key,
            models.key_wraps.c.master_key_location,
        ).order_by(models.key_wraps.c.data_key_id, models.key_wraps.c.state)
    ).all()
    return tuple(WrapRow(*row) for row in rows)


def expected_key_ids(wraps: Sequence[WrapRow]) -> str:
    """The master key ids that open the vault, worded for an error message."""
    current = sorted({w.master_key_id for w in wraps if w.state == "current"})
    upcoming = sorted({w.master_key_id for w in wraps if w.state == "next"})
    text = " or ".join(current) or "(none)"
    if upcoming:
        text += f" (or {' or '.join(upcoming)}, the new key of an unfinished rotation)"
    return text


def load_master_key(source: MasterKeySource, wraps: Sequence[WrapRow]) -> MasterKey:
    """Load the master key for an existing vault, saying what is expected when it fails.

    Raises:
        MasterKeyNotFoundError: the source gives no key; the message adds the expected id.
        MasterKeyInvalidError: the key is malformed or its file exposed.
    """
    try:
        return source.load()
    except MasterKeyNotFoundError as exc:
        # Lost key: say which key is needed and that we will not mint a replacement,
        # since a new key cannot decrypt what the old one wrapped.
        raise MasterKeyNotFoundError(
            f"{exc}. This vault's data key is wrapped under master key id "
            f"{expected_key_ids(wraps)}; restore that key to {source.location} (from your "
            f"backup). The vault refuses to start and will not create a new key, which "
            f"would make every stored secret unreadable"
        ) from exc


def unwrap_data_keys(master: MasterKey, wraps: Sequence[WrapRow]) -> dict[int, Secret]:
    """Unwrap every data key under ``master``.

    Raises:
        MasterKeyMismatchError: ``master`` is not a key the data keys are wrapped under.
        SecretDecryptionError: a wrap under ``master``'s id fails its integrity check.
    """
    mine = [w for w in wraps if w.master_key_id == master.key_id]
    all_ids = {w.data_key_id for w in wraps}
    if not mine or {w.data_key_id for w in mine} != all_ids:
        raise MasterKeyMismatchError(
            f"the master key from {master.location} has id {master.key_id}, but this vault's "
            f"data key is wrapped under master key id {expected_key_ids(wraps)}; supply that "
            f"key. The vault refuses to start and changed nothing"
        )
    keys: dict[int, Secret] = {}
    for wrap in mine:
        try:
            keys[wrap.data_key_id] = envelope.unwrap(master.material, wrap.wrapped_key)
        except envelope.AuthenticationFailed as exc:
            # The id matched, so the key is right: the stored wrap itself was altered.
            raise SecretDecryptionError(
                f"data key {wrap.data_key_id} wrapped under master key {master.key_id} fails "
                f"its RFC 3394 integrity check: the vault_key_wraps row was altered"
            ) from exc
    return keys


def open_keyring(
    database: Database, source: MasterKeySource
) -> tuple[tuple[WrapRow, ...], MasterKey]:
    """The wraps and the configured master key, proven to open every data key.

    Raises:
        VaultNotInitializedError: no data key yet.
        MasterKeyError, SecretDecryptionError: as :func:`load_master_key` and
            :func:`unwrap_data_keys`.
    """
    with database.transaction() as session:
        wraps = read_wraps(session)
    if not wraps:
        raise VaultNotInitializedError(NOT_INITIALIZED_MESSAGE)
    master = load_master_key(source, wraps)
    unwrap_data_keys(master, wraps)  # proves the key opens the vault before anything changes
    return wraps, master


def insert_data_key(
    session: Session,
    master: MasterKey,
    source: MasterKeySource,
    data_key: Secret,
    *,
    now: datetime,
    actor: str,
) -> int:
    """Store ``data_key`` wrapped under ``master`` as the current key; return its id."""
    data_key_id: int = session.execute(
        sa.insert(models.data_keys)
        .values(algorithm=envelope.CIPHER_ALGORITHM, created_at=now, created_by=actor)
        .returning(models.data_keys.c.id)
    ).scalar_one()
    session.execute(
        sa.insert(models.key_wraps).values(
            data_key_id=data_key_id,
            master_key_id=master.key_id,
            state="current",
            algorithm=envelope.WRAP_ALGORITHM,
            wrapped_key=envelope.wrap(master.material, data_key),
            master_key_location=source.location,
            created_at=now,
        )
    )
    return data_key_id
