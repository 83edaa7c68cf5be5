"""Rotating the data key: a new data key, every secret re-encrypted under it, the old deleted.

One transaction does it all, so SQLite's (or PostgreSQL's) atomic commit makes it
crash-safe by itself: after a crash the database holds either the old state or the new one.
A running vault meets secrets under the unknown data key and unwraps it on first use.
A master-key rotation in progress must be finished first: its new key is not at hand here,
and a data key wrapped under the old key only would be lost at the switch.
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from hybridge.storage.db import Database
from hybridge.vault import envelope, models
from hybridge.vault.errors import RotationError, SecretDecryptionError
from hybridge.vault.keyring import insert_data_key, open_keyring, unwrap_data_keys
from hybridge.vault.keys import MasterKeySource
from hybridge.vault.records import Clock, audit, utc_now
from hybridge.vault.rotation import RotationResult

log = structlog.get_logger(__name__)


def rotate_data_key(
    database: Database, source: MasterKeySource, *, actor: str, clock: Clock = utc_now
) -> RotationResult:
    """Create a new data key, re-encrypt every secret under it and delete the old one.

    One transaction: after a crash the database holds either the old state or the new one.

    Raises:
        RotationError: a master-key rotation is unfinished (its new key is not at hand here).
        SecretDecryptionError: a stored secret fails authentication; nothing is changed.
        MasterKeyError: the configured key is missing, malformed or not the vault's.
    """
    wraps, master = open_keyring(database, source)
    if any(w.state == "next" for w in wraps):
        raise RotationError(
            "a master-key rotation is unfinished; finish it before rotating the data key"
        )
    old_keys = unwrap_data_keys(master, wraps)
    now = clock()
    new_key = envelope.new_key()
    with database.transaction() as session:
        new_id = insert_data_key(session, master, source, new_key, now=now, actor=actor)
        rows = session.execute(sa.select(models.secrets)).all()
        for row in rows:
            fields = {
                "secret_id": row.id,
                "purpose": row.purpose,
                "record_id": row.record_id,
                "version": row.version,
            }
            try:
                plaintext = envelope.unseal(
                    old_keys[row.data_key_id],
                    row.nonce,
                    row.ciphertext,
                    envelope.secret_aad(**fields, data_key_id=row.data_key_id),
                )
            except envelope.AuthenticationFailed as exc:
                raise SecretDecryptionError(
                    f"secret {row.id} ({row.purpose} of record {row.record_id!r}) fails "
                    f"authentication; the data key was not rotated. Set or delete it first"
                ) from exc
            nonce, ciphertext = envelope.seal(
                new_key, plaintext, envelope.secret_aad(**fields, data_key_id=new_id)
            )
            session.execute(
                sa.update(models.secrets)
                .where(models.secrets.c.id == row.id)
                .values(data_key_id=new_id, nonce=nonce, ciphertext=ciphertext)
            )
        session.execute(sa.delete(models.data_keys).where(models.data_keys.c.id != new_id))
        audit(
            session,
            now,
            actor,
            "vault.data_key.rotated",
            [str(new_id)],
            [str(k) for k in sorted(old_keys)],
            f"{len(rows)} secrets re-encrypted",
        )
    log.info("vault.data_key.rotated", data_key_id=new_id, secrets=len(rows))
    return RotationResult(
        "data-key",
        "complete",
        ", ".join(str(k) for k in sorted(old_keys)),
        str(new_id),
        f"{len(rows)} secrets re-encrypted under data key {new_id}",
    )
