"""``rotate-key`` killed with SIGKILL after each step: every secret stays readable.

The rotation runs in a real ``hybridge`` process; the test hook ``HYBRIDGE_VAULT_TEST_CRASH_AT``
makes it SIGKILL itself right after the named step (no cleanup runs, as in a power cut).
The "restart" is a fresh ``Vault.open`` on the same files.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from vaultcli import PASSWORD, run_cli

from hybridge.storage.db import open_database, sqlite_url
from hybridge.vault import Secret, SecretRef, Vault, configured_source, read_status
from hybridge.vault.rotation import CRASH_ENV, STEPS, rotate_master_key, staging_path

RECORDS = {"config-1": PASSWORD, "config-2": "second secret", "node": "private key pem"}

# After which steps the key file already holds the new key.
NEW_KEY_IN_FILE = {"new-key-written": False, "new-wrap-stored": False}


def seed(data_dir: Path) -> tuple[Vault, dict[str, SecretRef], str]:
    database = open_database(sqlite_url(data_dir / "hybridge.db"), "node")
    vault = Vault.open(database, configured_source(data_dir, {}), create=True, actor="test")
    refs = {
        record: vault.put("exchange.impersonation", record, Secret.from_text(text), actor="t")
        for record, text in RECORDS.items()
    }
    return vault, refs, vault.master_key_id


def read_all(vault: Vault, refs: dict[str, SecretRef]) -> dict[str, str]:
    return {record: vault.get(ref).reveal_text() for record, ref in refs.items()}


def test_steps_are_the_documented_ones() -> None:
    assert STEPS == ("new-key-written", "new-wrap-stored", "key-file-switched", "old-wrap-dropped")


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_each_step_leaves_every_secret_readable(data_dir: Path, step: str) -> None:
    running, refs, old_id = seed(data_dir)
    source = configured_source(data_dir, {})

    crashed = run_cli(data_dir, "rotate-key", env={CRASH_ENV: step})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    # The server that was running the whole time never stopped reading.
    assert read_all(running, refs) == RECORDS

    # Restart: a new process opens with whatever key the file now holds.
    database = open_database(sqlite_url(data_dir / "hybridge.db"), "node")
    restarted = Vault.open(database, source)
    assert read_all(restarted, refs) == RECORDS
    file_has_new_key = NEW_KEY_IN_FILE.get(step, True)
    assert (restarted.master_key_id != old_id) is file_has_new_key
    status = read_status(database, source)
    assert status.key_ok, status.key_problem

    # Running the rotation again finishes or redoes it; one wrap under one key remains.
    result = rotate_master_key(database, source, actor="test")
    expected_phase = {"key-file-switched": "recovered"}.get(step, "complete")
    if step == "old-wrap-dropped":
        expected_phase = "complete"  # it had finished; this is simply a second rotation
    assert result.phase == expected_phase
    final = Vault.open(database, source)
    assert read_all(final, refs) == RECORDS
    status = read_status(database, source)
    assert status.next_master_key_id is None
    assert status.master_key_id == final.master_key_id == source.load().key_id
    assert not staging_path(source.path).exists()  # type: ignore[union-attr]
    database.dispose()
    running._database.dispose()


def test_uninterrupted_cli_rotation(data_dir: Path) -> None:
    running, refs, old_id = seed(data_dir)
    done = run_cli(data_dir, "rotate-key", "--json")
    assert done.returncode == 0, done.stderr
    assert '"phase": "complete"' in done.stdout
    assert f'"old_key_id": "{old_id}"' in done.stdout
    database = open_database(sqlite_url(data_dir / "hybridge.db"), "node")
    reopened = Vault.open(database, configured_source(data_dir, {}))
    assert reopened.master_key_id != old_id
    assert read_all(reopened, refs) == RECORDS
    assert read_all(running, refs) == RECORDS
    database.dispose()
