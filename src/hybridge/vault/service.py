"""The vault service: put, get, describe and delete secrets, each bound to its record.

Usage::

    vault = Vault.open(database, configured_source(data_dir), create=True)
    ref = vault.put("exchange.impersonation", config_id, Secret.from_text(pw), actor=who)
    vault.get(ref).reveal()        # bytes, only where the secret is used
    vault.metadata(ref)            # set_at, set_by, version: what a page may show

A caller stores ``ref.secret_id`` (and knows the purpose); ``SecretRef`` rebuilds it.
``put`` on an existing ``(purpose, record_id)`` replaces the value and bumps the version.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, NoReturn

import sqlalchemy as sa
import structlog

from hybridge.storage.db import Database
from hybridge.vault import envelope, models
from hybridge.vault.errors import (
    InvalidSecretInputError,
    SecretDecryptionError,
    SecretNotFoundError,
    VaultNotInitializedError,
)
from hybridge.vault.keyring import (
    insert_data_key,
    load_master_key,
    read_wraps,
    unwrap_data_keys,
)
from hybridge.vault.keys import KeyFileSource, MasterKey, MasterKeySource
from hybridge.vault.records import (
    NOT_INITIALIZED,
    Clock,
    SecretMetadata,
    SecretRef,
    audit,
    check_purpose,
    check_text,
    metadata_of,
    utc_now,
)
from hybridge.vault.secret import Secret

log = structlog.get_logger(__name__)


class Vault:
    """An open vault: the data keys unwrapped in memory, the database for the ciphertexts.

    Build it with :meth:`Vault.open`. Thread-safe; one instance per process is enough.
    """

    def __init__(
        self,
        database: Database,
        source: MasterKeySource,
        master: MasterKey,
        data_keys: dict[int, Secret],
        clock: Clock,
    ) -> None:
        self._database = database
        self._source = source
        self._master = master
        self._data_keys = dict(data_keys)
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Vault(master_key_id={self._master.key_id!r}, source={self._source.location!r})"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Vault holds keys and cannot be pickled")

    @property
    def master_key_id(self) -> str:
        """The id of the master key this vault was opened with."""
        return self._master.key_id

    @property
    def source(self) -> MasterKeySource:
        """Where the master key comes from."""
        return self._source

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        database: Database,
        source: MasterKeySource,
        *,
        create: bool = False,
        actor: str = "system",
        clock: Clock = utc_now,
    ) -> Vault:
        """Open the vault, creating its data key (and key file) on first use if ``create``.

        A vault that has a data key never creates a master key: a missing or wrong key is an
        error, and nothing in the database or on disk is changed.

        Raises:
            VaultNotInitializedError: no data key yet and ``create`` is false.
            MasterKeyError: the master key is missing, malformed, exposed or not this vault's.
            SecretDecryptionError: the stored wrap of the data key was altered.
            StorageError: the database failed.
        """
        with database.transaction() as session:
            wraps = read_wraps(session)
        if wraps:
            master = load_master_key(source, wraps)
            return cls(database, source, master, unwrap_data_keys(master, wraps), clock)
        if not create:
            raise VaultNotInitializedError(NOT_INITIALIZED)
        return cls._initialize(database, source, check_text("actor", actor), clock)

    @classmethod
    def _initialize(
        cls, database: Database, source: MasterKeySource, actor: str, clock: Clock
    ) -> Vault:
        # The key file is created before the database row: a crash in between leaves a key
        # file and no data key, which the next start simply uses. The reverse order could
        # leave a data key wrapped under a key that was never written down.
        if isinstance(source, KeyFileSource) and not source.exists():
            master = source.create()
        else:
            master = source.load()
        data_key = envelope.new_key()
        now = clock()
        with database.transaction() as session:
            # If another process initialized first, open what it made instead.
            if not read_wraps(session):
                insert_data_key(session, master, source, data_key, now=now, actor=actor)
                audit(session, now, actor, "vault.init", [master.key_id], [], source.location)
                log.info("vault.init", master_key_id=master.key_id, source=source.location)
        return cls.open(database, source, clock=clock)

    # -- data keys ---------------------------------------------------------------------

    def _data_key(self, data_key_id: int) -> Secret:
        with self._lock:
            key = self._data_keys.get(data_key_id)
            if key is not None:
                return key
            # A data key we have not seen: another process rotated it, or rotated the master
            # key (then ours no longer unwraps). Re-read; reload the master key only if needed.
            with self._database.transaction() as session:
                wraps = read_wraps(session)
            if not any(w.master_key_id == self._master.key_id for w in wraps):
                self._master = load_master_key(self._source, wraps)
            self._data_keys = unwrap_data_keys(self._master, wraps)
            key = self._data_keys.get(data_key_id)
        if key is None:
            raise SecretDecryptionError(
                f"data key {data_key_id} is referenced by a secret but does not exist"
            )
        return key

    # -- secrets -----------------------------------------------------------------------

    def put(
        self, purpose: str, record_id: str, plaintext: bytes | Secret, *, actor: str
    ) -> SecretRef:
        """Store ``plaintext`` as the secret of ``(purpose, record_id)``; returns its ref.

        Replacing keeps the secret id and increments the version.

        Raises:
            InvalidSecretInputError: a bad purpose, record id or actor.
            VaultNotInitializedError: the data key was removed from under us.
            StorageError: the database failed.
        """
        secret = plaintext if isinstance(plaintext, Secret) else Secret(plaintext)
        check_purpose(purpose)
        check_text("record id", record_id)
        check_text("actor", actor)
        now = self._clock()
        with self._database.transaction() as session:
            data_key_id = session.scalar(sa.select(sa.func.max(models.data_keys.c.id)))
            if data_key_id is None:
                raise VaultNotInitializedError(NOT_INITIALIZED)
            existing = session.execute(
                sa.select(models.secrets.c.id, models.secrets.c.version).where(
                    models.secrets.c.purpose == purpose, models.secrets.c.record_id == record_id
                )
            ).first()
            secret_id, version = (
                (existing.id, existing.version + 1) if existing else (uuid.uuid4().hex, 1)
            )
            aad = envelope.secret_aad(
                secret_id=secret_id,
                purpose=purpose,
                record_id=record_id,
                version=version,
                data_key_id=data_key_id,
            )
            nonce, ciphertext = envelope.seal(self._data_key(data_key_id), secret, aad)
            values = {
                "version": version,
                "data_key_id": data_key_id,
                "nonce": nonce,
                "ciphertext": ciphertext,
                "set_at": now,
                "set_by": actor,
            }
            if existing:
                session.execute(
                    sa.update(models.secrets)
                    .where(models.secrets.c.id == secret_id)
                    .values(**values)
                )
            else:
                session.execute(
                    sa.insert(models.secrets).values(
                        id=secret_id, purpose=purpose, record_id=record_id, **values
                    )
                )
            audit(
                session,
                now,
                actor,
                "vault.secret.set",
                [secret_id],
                [],
                f"purpose={purpose} record={record_id} version={version}",
            )
        log.info(
            "vault.secret.set",
            secret_id=secret_id,
            purpose=purpose,
            record_id=record_id,
            version=version,
            actor=actor,
        )
        return SecretRef(secret_id, purpose)

    def _row(self, ref: SecretRef) -> sa.Row[Any]:
        if not isinstance(ref, SecretRef):
            raise InvalidSecretInputError(f"expected a SecretRef, not {type(ref).__name__}")
        with self._database.transaction() as session:
            row = session.execute(
                sa.select(models.secrets).where(models.secrets.c.id == ref.secret_id)
            ).first()
        if row is None or row.purpose != ref.purpose:
            raise SecretNotFoundError(
                f"no secret {ref.secret_id!r} with purpose {ref.purpose!r} in the vault"
            )
        return row

    def get(self, ref: SecretRef) -> Secret:
        """The secret's value (call ``.reveal()`` where it is used).

        Raises:
            SecretNotFoundError: no such secret for that purpose.
            SecretDecryptionError: the stored record fails authentication (tampered with, or
                its ciphertext moved from another record or version).
        """
        row = self._row(ref)
        aad = envelope.secret_aad(
            secret_id=row.id,
            purpose=row.purpose,
            record_id=row.record_id,
            version=row.version,
            data_key_id=row.data_key_id,
        )
        try:
            return envelope.unseal(self._data_key(row.data_key_id), row.nonce, row.ciphertext, aad)
        except envelope.AuthenticationFailed as exc:
            # The data key opened under the right master key, so this row is the problem.
            log.warning(
                "vault.secret.tampered", secret_id=row.id, purpose=row.purpose, reason=str(exc)
            )
            raise SecretDecryptionError(
                f"secret {row.id} ({row.purpose} of record {row.record_id!r}, version "
                f"{row.version}) fails AES-GCM authentication ({exc}): its stored ciphertext "
                f"was altered or moved from another record; it is not returned. Set it again"
            ) from exc

    def metadata(self, ref: SecretRef) -> SecretMetadata:
        """When and by whom the secret was set, and its version; never the value.

        Raises:
            SecretNotFoundError: no such secret for that purpose.
        """
        return metadata_of(self._row(ref))

    def find(self, purpose: str, record_id: str) -> SecretRef | None:
        """The ref of the secret of ``(purpose, record_id)``, or ``None``."""
        check_purpose(purpose)
        check_text("record id", record_id)
        with self._database.transaction() as session:
            secret_id = session.scalar(
                sa.select(models.secrets.c.id).where(
                    models.secrets.c.purpose == purpose, models.secrets.c.record_id == record_id
                )
            )
        return None if secret_id is None else SecretRef(secret_id, purpose)

    def list(self, purpose: str | None = None) -> tuple[SecretMetadata, ...]:
        """Metadata of every secret (of one purpose, if given), by purpose and record."""
        query = sa.select(models.secrets).order_by(
            models.secrets.c.purpose, models.secrets.c.record_id
        )
        if purpose is not None:
            query = query.where(models.secrets.c.purpose == check_purpose(purpose))
        with self._database.transaction() as session:
            rows = session.execute(query).all()
        return tuple(metadata_of(row) for row in rows)

    def verify(self) -> tuple[tuple[SecretRef, str], ...]:
        """Decrypt every secret and discard the value; returns the failures and their reason.

        For ``vault status --verify`` after a restore or a suspected tampering: the reasons
        are :class:`SecretDecryptionError` messages (record and cause, never a value).
        """
        failures = []
        for meta in self.list():
            try:
                self.get(meta.ref)
            except (SecretDecryptionError, SecretNotFoundError) as exc:
                failures.append((meta.ref, str(exc)))
        return tuple(failures)

    def delete(self, ref: SecretRef, *, actor: str) -> None:
        """Remove the secret.

        Raises:
            SecretNotFoundError: no such secret for that purpose.
        """
        check_text("actor", actor)
        now = self._clock()
        with self._database.transaction() as session:
            result = session.execute(
                sa.delete(models.secrets).where(
                    models.secrets.c.id == ref.secret_id, models.secrets.c.purpose == ref.purpose
                )
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise SecretNotFoundError(
                    f"no secret {ref.secret_id!r} with purpose {ref.purpose!r} in the vault"
                )
            audit(session, now, actor, "vault.secret.delete", [], [ref.secret_id], ref.purpose)
        log.info("vault.secret.delete", secret_id=ref.secret_id, purpose=ref.purpose, actor=actor)
