"""Rotating the master key (file and two-phase) and the data key, in process."""

from __future__ import annotations

import base64
import fcntl
import os
import sqlite3
from pathlib import Path

import pytest
from vaultunit import PASSWORD

from hybridge.storage.db import Database
from hybridge.vault import (
    EnvKeySource,
    KeyFileSource,
    MasterKeyMismatchError,
    RotationError,
    Secret,
    SecretDecryptionError,
    Vault,
    finish_rotation,
    rotate_data_key,
    rotate_master_key,
)
from hybridge.vault.envelope import key_id, new_key
from hybridge.vault.rotation import staging_path

PURPOSE = "exchange.impersonation"


def wraps(db_path: Path) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(
            "SELECT data_key_id, master_key_id, state FROM vault_key_wraps ORDER BY state"
        ).fetchall()
    finally:
        connection.close()


def env_key() -> tuple[str, str]:
    material = new_key()
    return base64.b64encode(material.reveal()).decode(), key_id(material)


def test_file_rotation_replaces_key_and_keeps_secrets(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path
) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="a")
    old_id, old_text = vault.master_key_id, key_file.path.read_bytes()
    result = rotate_master_key(database, key_file, actor="admin")
    new_id = key_file.load().key_id
    assert (result.phase, result.old_key_id, result.new_key_id) == ("complete", old_id, new_id)
    assert new_id != old_id and key_file.path.read_bytes() != old_text
    assert not staging_path(key_file.path).exists()
    assert wraps(db_path) == [(1, new_id, "current")]
    # A process started now opens with the new file; the running one never noticed.
    assert Vault.open(database, key_file).get(ref).reveal_text() == PASSWORD
    assert vault.get(ref).reveal_text() == PASSWORD
    assert vault.put(PURPOSE, "config-2", b"after", actor="a")


def test_old_key_no_longer_opens_after_rotation(
    vault: Vault, database: Database, key_file: KeyFileSource, tmp_path: Path
) -> None:
    old_text = key_file.path.read_bytes()
    rotate_master_key(database, key_file, actor="admin")
    saved = KeyFileSource(tmp_path / "backup" / "old.key")
    saved.path.parent.mkdir(mode=0o700)
    saved.path.write_bytes(old_text)
    saved.path.chmod(0o600)
    with pytest.raises(MasterKeyMismatchError, match=f"has id {vault.master_key_id}, but"):
        Vault.open(database, saved)


def test_env_key_cannot_rotate_without_new_key(database: Database) -> None:
    text, _ = env_key()
    env = EnvKeySource("K", {"K": text})
    Vault.open(database, env, create=True)
    with pytest.raises(RotationError) as info:
        rotate_master_key(database, env, actor="admin")
    assert str(info.value) == (
        "the master key comes from the environment variable K, which Hybridge cannot write; "
        "put the new key where your key store keeps keys, then run rotate-key with "
        "--new-key-env VARIABLE or --new-key-command COMMAND giving it"
    )


def test_two_phase_rotation_with_environment_keys(database: Database, db_path: Path) -> None:
    old_text, old_id = env_key()
    new_text, new_id = env_key()
    old = EnvKeySource("OLD", {"OLD": old_text})
    new = EnvKeySource("NEW", {"NEW": new_text})
    vault = Vault.open(database, old, create=True)
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="a")

    begun = rotate_master_key(database, old, new_source=new, actor="admin")
    assert (begun.phase, begun.old_key_id, begun.new_key_id) == (
        "awaiting-switch",
        old_id,
        new_id,
    )
    assert sorted(wraps(db_path)) == sorted([(1, old_id, "current"), (1, new_id, "next")])
    # Both keys open the vault until the switch: no downtime whichever a process has.
    assert Vault.open(database, old).get(ref).reveal_text() == PASSWORD
    assert Vault.open(database, new).get(ref).reveal_text() == PASSWORD

    with pytest.raises(RotationError) as early:
        finish_rotation(database, old, actor="admin")
    assert str(early.value) == (
        f"the configured master key (environment variable OLD) is still the old key "
        f"{old_id}; point it at the new key {new_id} first"
    )
    with pytest.raises(RotationError) as again:
        rotate_master_key(database, new, new_source=old, actor="admin")
    assert str(again.value) == (
        f"the configured key {new_id} is already the new key of an unfinished rotation; "
        f"run rotate-key --finish"
    )

    done = finish_rotation(database, new, actor="admin")
    assert (done.phase, done.old_key_id, done.new_key_id) == ("complete", old_id, new_id)
    assert wraps(db_path) == [(1, new_id, "current")]
    with pytest.raises(MasterKeyMismatchError):
        Vault.open(database, old)
    with pytest.raises(RotationError) as nothing:
        finish_rotation(database, new, actor="admin")
    assert str(nothing.value) == "no master-key rotation is waiting to be finished"


def test_new_key_equal_to_current_is_refused(database: Database) -> None:
    text, kid = env_key()
    source = EnvKeySource("K", {"K": text})
    Vault.open(database, source, create=True)
    with pytest.raises(RotationError) as info:
        rotate_master_key(
            database, source, new_source=EnvKeySource("N", {"N": text}), actor="admin"
        )
    assert str(info.value) == (
        f"the new key from environment variable N is the current key {kid}; give a different key"
    )


def test_an_abandoned_next_wrap_is_replaced(database: Database, db_path: Path) -> None:
    old_text, old_id = env_key()
    old = EnvKeySource("OLD", {"OLD": old_text})
    Vault.open(database, old, create=True)
    first_text, first_id = env_key()
    rotate_master_key(database, old, new_source=EnvKeySource("A", {"A": first_text}), actor="x")
    second_text, second_id = env_key()
    rotate_master_key(database, old, new_source=EnvKeySource("B", {"B": second_text}), actor="x")
    assert sorted(wraps(db_path)) == sorted([(1, old_id, "current"), (1, second_id, "next")])
    assert first_id not in repr(wraps(db_path))


def test_data_key_rotation_reencrypts_and_running_vault_follows(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path
) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="a")
    before = sqlite3.connect(db_path).execute("SELECT ciphertext FROM vault_secrets").fetchone()
    result = rotate_data_key(database, key_file, actor="admin")
    assert (result.kind, result.old_key_id, result.new_key_id) == ("data-key", "1", "2")
    after = sqlite3.connect(db_path).execute("SELECT ciphertext FROM vault_secrets").fetchone()
    assert before != after
    assert wraps(db_path) == [(2, vault.master_key_id, "current")]
    # The running vault still holds data key 1 only: it must pick up data key 2 by itself.
    assert vault.get(ref).reveal_text() == PASSWORD
    assert vault.metadata(ref).data_key_id == 2
    assert vault.put(PURPOSE, "config-2", b"new", actor="a")


def test_running_vault_follows_master_then_data_key_rotation(
    vault: Vault, database: Database, key_file: KeyFileSource
) -> None:
    ref = vault.put(PURPOSE, "config-1", Secret.from_text(PASSWORD), actor="a")
    rotate_master_key(database, key_file, actor="admin")
    rotate_data_key(database, key_file, actor="admin")
    # Its master key is gone from the database: it reloads the key file to unwrap key 2.
    assert vault.get(ref).reveal_text() == PASSWORD
    assert vault.master_key_id == key_file.load().key_id


def test_data_key_rotation_stops_on_a_tampered_secret(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path
) -> None:
    good = vault.put(PURPOSE, "config-1", b"good", actor="a")
    bad = vault.put(PURPOSE, "config-2", b"bad", actor="a")
    connection = sqlite3.connect(db_path)
    with connection:
        connection.execute(
            "UPDATE vault_secrets SET nonce = zeroblob(12) WHERE id = ?", (bad.secret_id,)
        )
    connection.close()
    with pytest.raises(SecretDecryptionError) as info:
        rotate_data_key(database, key_file, actor="admin")
    assert str(info.value) == (
        f"secret {bad.secret_id} ({PURPOSE} of record 'config-2') fails authentication; "
        f"the data key was not rotated. Set or delete it first"
    )
    assert wraps(db_path) == [(1, vault.master_key_id, "current")]
    assert vault.get(good).reveal() == b"good"


def test_data_key_rotation_waits_for_master_rotation(database: Database) -> None:
    old_text, _ = env_key()
    new_text, _ = env_key()
    old = EnvKeySource("OLD", {"OLD": old_text})
    Vault.open(database, old, create=True)
    rotate_master_key(database, old, new_source=EnvKeySource("N", {"N": new_text}), actor="x")
    with pytest.raises(RotationError) as info:
        rotate_data_key(database, old, actor="admin")
    assert str(info.value) == (
        "a master-key rotation is unfinished; finish it before rotating the data key"
    )


def test_concurrent_file_rotation_is_refused(
    vault: Vault, database: Database, key_file: KeyFileSource, db_path: Path
) -> None:
    lock_path = key_file.path.with_name("master.key.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another rotation is in progress
        with pytest.raises(RotationError) as info:
            rotate_master_key(database, key_file, actor="admin")
        assert str(info.value) == (
            f"another master-key rotation holds {lock_path}; wait for it to finish"
        )
        assert wraps(db_path) == [(1, vault.master_key_id, "current")]
        assert not staging_path(key_file.path).exists()
    finally:
        os.close(fd)
    assert rotate_master_key(database, key_file, actor="admin").phase == "complete"
