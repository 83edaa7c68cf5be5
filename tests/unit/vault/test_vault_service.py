"""The vault on a real SQLite database: put/get/metadata/delete, binding, lost/wrong keys."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from vaultunit import FIXED_NOW, PASSWORD, fixed_clock

from hybridge.storage.db import Database, alembic_config, sqlite_url, upgrade
from hybridge.vault import (
    InvalidSecretInputError,
    KeyFileSource,
    MasterKeyMismatchError,
    MasterKeyNotFoundError,
    Secret,
    SecretDecryptionError,
    SecretMetadata,
    SecretNotFoundError,
    SecretRef,
    Vault,
    VaultNotInitializedError,
)

PURPOSE = "exchange.impersonation"


def sql(db_path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run raw SQL on the file, as an attacker with write access to the database would."""
    connection = sqlite3.connect(db_path)
    try:
        with connection:
            return connection.execute(statement, params).fetchall()
    finally:
        connection.close()


def test_migration_creates_the_vault_tables(database: Database) -> None:
    tables = set(sa.inspect(database.engine).get_table_names())
    assert {"vault_data_keys", "vault_key_wraps", "vault_secrets"} <= tables
    script = ScriptDirectory.from_config(alembic_config("node")).get_revision("0002_vault")
    assert script is not None and script.down_revision == "0001_truststore"


def test_migration_downgrades_to_the_trust_store_schema(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node", "0002_vault")
    vault_tables = {"vault_data_keys", "vault_key_wraps", "vault_secrets"}
    assert vault_tables <= set(sa.inspect(engine).get_table_names())
    cfg = alembic_config("node")
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001_truststore")
    remaining = set(sa.inspect(engine).get_table_names())
    assert not vault_tables & remaining
    assert "audit_log" in remaining
    engine.dispose()


def test_first_open_creates_key_file_and_data_key(vault: Vault, key_file: KeyFileSource) -> None:
    assert stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.path.parent.stat().st_mode) == 0o700
    assert vault.master_key_id == key_file.load().key_id
    assert repr(vault) == (
        f"Vault(master_key_id={vault.master_key_id!r}, source='key file {key_file.path}')"
    )


def test_open_without_create_on_empty_vault(database: Database, key_file: KeyFileSource) -> None:
    with pytest.raises(VaultNotInitializedError) as info:
        Vault.open(database, key_file)
    assert str(info.value) == (
        "the vault has no data key yet; run `hybridge connector vault init` (or store a first "
        "secret through the connector) to create it"
    )
    assert not key_file.exists()


def test_put_get_round_trip(vault: Vault) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="admin@example.org")
    assert ref.purpose == PURPOSE and len(ref.secret_id) == 32
    assert vault.get(ref).reveal_text() == PASSWORD
    assert vault.get(SecretRef(ref.secret_id, PURPOSE)).reveal_text() == PASSWORD
    assert vault.put(PURPOSE, "config-2", b"raw bytes", actor="a").secret_id != ref.secret_id


def test_put_replaces_keeps_id_and_bumps_version(vault: Vault) -> None:
    first = vault.put(PURPOSE, "config-1", b"old", actor="alice")
    second = vault.put(PURPOSE, "config-1", b"new", actor="bob")
    assert second == first
    assert vault.get(first).reveal() == b"new"
    meta = vault.metadata(first)
    assert meta == SecretMetadata(
        ref=first, record_id="config-1", version=2, set_at=FIXED_NOW, set_by="bob", data_key_id=1
    )


def test_find_list_delete(vault: Vault) -> None:
    ref = vault.put(PURPOSE, "config-1", b"x", actor="a")
    other = vault.put("connector.private_key", "node", b"y", actor="a")
    assert vault.find(PURPOSE, "config-1") == ref
    assert vault.find(PURPOSE, "config-9") is None
    assert [m.ref for m in vault.list()] == [other, ref]
    assert [m.ref for m in vault.list(PURPOSE)] == [ref]
    vault.delete(ref, actor="a")
    assert vault.find(PURPOSE, "config-1") is None
    with pytest.raises(SecretNotFoundError) as info:
        vault.get(ref)
    assert str(info.value) == (f"no secret {ref.secret_id!r} with purpose {PURPOSE!r} in the vault")
    with pytest.raises(SecretNotFoundError):
        vault.delete(ref, actor="a")


def test_a_ref_with_another_purpose_finds_nothing(vault: Vault) -> None:
    ref = vault.put(PURPOSE, "config-1", b"x", actor="a")
    wrong = SecretRef(ref.secret_id, "connector.private_key")
    with pytest.raises(SecretNotFoundError) as info:
        vault.get(wrong)
    assert str(info.value) == (
        f"no secret {ref.secret_id!r} with purpose 'connector.private_key' in the vault"
    )
    with pytest.raises(SecretNotFoundError):
        vault.metadata(wrong)


@pytest.mark.parametrize(
    ("purpose", "record_id", "actor", "message"),
    [
        (
            "Exchange",
            "c",
            "a",
            "purpose 'Exchange' is not accepted; expected a lowercase name like "
            "'exchange.impersonation' (letters, digits, '.', '_', '-', at most 64)",
        ),
        (
            PURPOSE,
            "",
            "a",
            "record id '' is not accepted; expected 1 to 200 characters of text",
        ),
        (PURPOSE, "a\nb", "a", "record id 'a\\nb' contains control characters"),
        (
            PURPOSE,
            "c",
            "x" * 201,
            f"actor {'x' * 201!r} is not accepted; expected 1 to 200 characters of text",
        ),
    ],
)
def test_put_rejects_bad_input(
    vault: Vault, purpose: str, record_id: str, actor: str, message: str
) -> None:
    with pytest.raises(InvalidSecretInputError) as info:
        vault.put(purpose, record_id, b"value", actor=actor)
    assert str(info.value) == message
    assert vault.list() == ()


def test_secret_ref_validation() -> None:
    with pytest.raises(InvalidSecretInputError) as info:
        SecretRef("../../etc", PURPOSE)
    assert str(info.value) == (
        "secret id '../../etc' is not accepted; expected 32 lowercase hex digits"
    )


def test_swapped_ciphertexts_both_fail(vault: Vault, db_path: Path) -> None:
    # Issue 6: swapping two ciphertexts in the database makes both fail to decrypt.
    a = vault.put(PURPOSE, "config-a", b"password-a", actor="a")
    b = vault.put(PURPOSE, "config-b", b"password-b", actor="a")
    (nonce_a, ct_a), (nonce_b, ct_b) = (
        sql(db_path, "SELECT nonce, ciphertext FROM vault_secrets WHERE id = ?", ref.secret_id)[0]
        for ref in (a, b)
    )
    update = "UPDATE vault_secrets SET nonce = ?, ciphertext = ? WHERE id = ?"
    sql(db_path, update, nonce_b, ct_b, a.secret_id)
    sql(db_path, update, nonce_a, ct_a, b.secret_id)
    for ref, record in ((a, "config-a"), (b, "config-b")):
        with pytest.raises(SecretDecryptionError) as info:
            vault.get(ref)
        assert str(info.value) == (
            f"secret {ref.secret_id} ({PURPOSE} of record {record!r}, version 1) fails "
            f"AES-GCM authentication (authentication tag does not match): its stored "
            f"ciphertext was altered or moved from another record; it is not returned. "
            f"Set it again"
        )
        assert "password" not in str(info.value)


@pytest.mark.parametrize(
    "attack",
    [
        "UPDATE vault_secrets SET version = 2",
        "UPDATE vault_secrets SET record_id = 'config-other'",
        "UPDATE vault_secrets SET purpose = 'exchange.other'",
        "UPDATE vault_secrets SET id = '0123456789abcdef0123456789abcdef'",
        "UPDATE vault_secrets SET ciphertext = CAST(ciphertext || x'00' AS BLOB)",
        "UPDATE vault_secrets SET nonce = zeroblob(12)",
    ],
)
def test_altered_rows_fail(vault: Vault, db_path: Path, attack: str) -> None:
    vault.put(PURPOSE, "config-1", b"value", actor="a")
    sql(db_path, attack)
    (meta,) = vault.list()
    with pytest.raises(SecretDecryptionError, match="fails AES-GCM authentication"):
        vault.get(meta.ref)


def test_altered_wrapped_data_key_is_reported(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path
) -> None:
    sql(db_path, "UPDATE vault_key_wraps SET wrapped_key = zeroblob(40)")
    with pytest.raises(SecretDecryptionError) as info:
        Vault.open(database, key_file)
    assert str(info.value) == (
        f"data key 1 wrapped under master key {vault.master_key_id} fails its RFC 3394 "
        f"integrity check: the vault_key_wraps row was altered"
    )


def test_lost_key_file_refuses_and_is_not_recreated(
    vault: Vault, database: Database, key_file: KeyFileSource
) -> None:
    vault.put(PURPOSE, "config-1", b"value", actor="a")
    key_file.path.unlink()
    for create in (False, True):
        with pytest.raises(MasterKeyNotFoundError) as info:
            Vault.open(database, key_file, create=create)
        assert str(info.value) == (
            f"the key file {key_file.path} does not exist. This vault's data key is wrapped "
            f"under master key id {vault.master_key_id}; restore that key to key file "
            f"{key_file.path} (from your backup). The vault refuses to start and will not "
            f"create a new key, which would make every stored secret unreadable"
        )
        assert not key_file.exists()


def test_wrong_key_refuses_and_changes_nothing(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path, tmp_path: Path
) -> None:
    vault.put(PURPOSE, "config-1", b"value", actor="a")
    original = key_file.path.read_bytes()
    before = sql(db_path, "SELECT * FROM vault_key_wraps")
    other = KeyFileSource(tmp_path / "other" / "master.key")
    wrong_id = other.create().key_id
    key_file.path.unlink()
    other.path.rename(key_file.path)
    with pytest.raises(MasterKeyMismatchError) as info:
        Vault.open(database, key_file, create=True)
    assert str(info.value) == (
        f"the master key from key file {key_file.path} has id {wrong_id}, but this vault's "
        f"data key is wrapped under master key id {vault.master_key_id}; supply that key. "
        f"The vault refuses to start and changed nothing"
    )
    assert sql(db_path, "SELECT * FROM vault_key_wraps") == before
    assert key_file.path.read_bytes() != original  # the wrong key was not replaced either


def test_reopen_with_the_right_key(
    vault: Vault, database: Database, key_file: KeyFileSource
) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="a")
    again = Vault.open(database, key_file, clock=fixed_clock)
    assert again.master_key_id == vault.master_key_id
    assert again.get(ref).reveal_text() == PASSWORD


def test_existing_key_file_is_adopted_on_first_init(
    database: Database, key_file: KeyFileSource
) -> None:
    provisioned = key_file.create()
    vault = Vault.open(database, key_file, create=True)
    assert vault.master_key_id == provisioned.key_id


def test_audit_log_records_ids_not_values(vault: Vault, db_path: Path) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="admin@x")
    vault.delete(ref, actor="admin@x")
    rows = sql(db_path, "SELECT actor, action, added, removed, detail FROM audit_log ORDER BY id")
    assert [row[1] for row in rows] == ["vault.init", "vault.secret.set", "vault.secret.delete"]
    assert rows[1][0] == "admin@x"
    assert ref.secret_id in str(rows[1][2])
    assert PASSWORD not in repr(rows)


def test_verify_lists_only_the_failing_secrets(vault: Vault, db_path: Path) -> None:
    good = vault.put(PURPOSE, "config-1", b"good", actor="a")
    bad = vault.put(PURPOSE, "config-2", b"bad", actor="a")
    assert vault.verify() == ()
    sql(db_path, "UPDATE vault_secrets SET version = 5 WHERE id = ?", bad.secret_id)
    ((ref, problem),) = vault.verify()
    assert ref == bad
    assert problem.startswith(f"secret {bad.secret_id} ({PURPOSE} of record 'config-2', version 5)")
    assert vault.get(good).reveal() == b"good"
