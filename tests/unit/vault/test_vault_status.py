"""``read_status``: ids, locations and counts; key problems reported, never raised."""

from __future__ import annotations

import base64

from vaultunit import FIXED_NOW

from hybridge.storage.db import Database
from hybridge.vault import EnvKeySource, KeyFileSource, Vault, read_status, rotate_master_key
from hybridge.vault.envelope import key_id, new_key


def test_not_initialized_with_default_key_file(database: Database, key_file: KeyFileSource) -> None:
    status = read_status(database, key_file)
    assert status.as_dict() == {
        "initialized": False,
        "key_provider": "file",
        "key_location": f"key file {key_file.path}",
        "key_ok": False,
        "key_problem": "the vault is not initialized; run `hybridge connector vault init`",
        "master_key_id": None,
        "configured_key_id": None,
        "rotation_in_progress": False,
        "next_master_key_id": None,
        "data_key_id": None,
        "data_key_created_at": None,
        "data_key_created_by": None,
        "secrets_count": 0,
        "secrets_by_purpose": {},
    }
    assert not key_file.exists()  # status never creates a key


def test_initialized_counts_by_purpose(
    vault: Vault, database: Database, key_file: KeyFileSource
) -> None:
    vault.put("exchange.impersonation", "c1", b"a", actor="a")
    vault.put("exchange.impersonation", "c2", b"b", actor="a")
    vault.put("connector.private_key", "node", b"c", actor="a")
    status = read_status(database, key_file)
    assert status.key_ok and status.key_problem is None
    assert status.master_key_id == status.configured_key_id == vault.master_key_id
    assert status.data_key_id == 1
    assert status.data_key_created_at == FIXED_NOW
    assert status.data_key_created_by == "test:init"
    assert status.secrets_count == 3
    assert status.secrets_by_purpose == {"connector.private_key": 1, "exchange.impersonation": 2}


def test_lost_key_is_reported(vault: Vault, database: Database, key_file: KeyFileSource) -> None:
    key_file.path.unlink()
    status = read_status(database, key_file)
    assert not status.key_ok
    assert status.master_key_id == vault.master_key_id
    assert status.configured_key_id is None
    assert status.key_problem is not None
    assert status.key_problem.startswith(f"the key file {key_file.path} does not exist.")
    assert not key_file.exists()


def test_wrong_key_is_reported(vault: Vault, database: Database) -> None:
    other = new_key()
    env = EnvKeySource("K", {"K": base64.b64encode(other.reveal()).decode()})
    status = read_status(database, env)
    assert not status.key_ok
    assert status.configured_key_id == key_id(other)
    assert status.key_problem == (
        f"the master key from environment variable K has id {key_id(other)}, but this vault's "
        f"data key is wrapped under master key id {vault.master_key_id}; supply that key. "
        f"The vault refuses to start and changed nothing"
    )


def test_rotation_in_progress_is_shown(
    vault: Vault, database: Database, key_file: KeyFileSource
) -> None:
    new = new_key()
    env = EnvKeySource("N", {"N": base64.b64encode(new.reveal()).decode()})
    rotate_master_key(database, key_file, new_source=env, actor="a")
    status = read_status(database, key_file)
    assert status.key_ok
    assert status.as_dict()["rotation_in_progress"] is True
    assert status.next_master_key_id == key_id(new)
    assert status.master_key_id == vault.master_key_id
