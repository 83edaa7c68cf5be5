"""``hybridge connector vault`` as a real process: status, init, rotate-key, key providers."""

from __future__ import annotations

import base64
import json
import shlex
import sys
from pathlib import Path

from vaultcli import run_cli

from hybridge.vault.envelope import key_id, new_key


def b64_key() -> tuple[str, str]:
    material = new_key()
    return base64.b64encode(material.reveal()).decode(), key_id(material)


def test_status_init_status_with_key_file(data_dir: Path) -> None:
    before = run_cli(data_dir, "status", "--json")
    assert before.returncode == 1
    report = json.loads(before.stdout)
    assert report["initialized"] is False
    assert report["key_location"] == f"key file {data_dir / 'keys' / 'master.key'}"
    assert not (data_dir / "keys").exists()  # status never creates a key

    init = run_cli(data_dir, "init", "--json")
    assert init.returncode == 0, init.stderr
    created = json.loads(init.stdout)
    assert (data_dir / "keys" / "master.key").exists()

    after = run_cli(data_dir, "status")
    assert after.returncode == 0, after.stderr
    assert f"master key id:    {created['master_key_id']}" in after.stdout
    assert "key opens vault:  yes" in after.stdout
    assert "secrets:          0" in after.stdout


def test_environment_key_and_mismatch(data_dir: Path) -> None:
    text, kid = b64_key()
    init = run_cli(data_dir, "init", "--json", env={"HYBRIDGE_MASTER_KEY": text})
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout) == {
        "master_key_id": kid,
        "key_location": "environment variable HYBRIDGE_MASTER_KEY",
    }
    assert not (data_dir / "keys").exists()  # the env key is not copied to a file

    other, other_id = b64_key()
    wrong = run_cli(data_dir, "status", "--json", env={"HYBRIDGE_MASTER_KEY": other})
    assert wrong.returncode == 1
    report = json.loads(wrong.stdout)
    assert report["configured_key_id"] == other_id and report["master_key_id"] == kid
    assert report["key_problem"] == (
        f"the master key from environment variable HYBRIDGE_MASTER_KEY has id {other_id}, but "
        f"this vault's data key is wrapped under master key id {kid}; supply that key. The "
        f"vault refuses to start and changed nothing"
    )
    assert text not in wrong.stdout + wrong.stderr and other not in wrong.stdout + wrong.stderr

    # With no key configured the vault now looks for the key file, and says what it needs.
    lost = run_cli(data_dir, "rotate-key")
    assert lost.returncode == 2
    assert lost.stderr.startswith(f"hybridge: the key file {data_dir / 'keys' / 'master.key'}")
    assert f"wrapped under master key id {kid}" in lost.stderr
    assert "Traceback" not in lost.stderr


def test_two_phase_rotation_with_command_keys(data_dir: Path, tmp_path: Path) -> None:
    old, old_id = b64_key()
    new, new_id = b64_key()
    (tmp_path / "old.b64").write_text(old)
    (tmp_path / "new.b64").write_text(new)

    def printer(name: str) -> str:
        path = tmp_path / name
        return shlex.join([sys.executable, "-c", f"print(open({str(path)!r}).read())"])

    old_env = {"HYBRIDGE_MASTER_KEY_COMMAND": printer("old.b64")}
    new_env = {"HYBRIDGE_MASTER_KEY_COMMAND": printer("new.b64")}
    assert run_cli(data_dir, "init", env=old_env).returncode == 0

    begun = run_cli(
        data_dir, "rotate-key", "--new-key-command", printer("new.b64"), "--json", env=old_env
    )
    assert begun.returncode == 0, begun.stderr
    assert json.loads(begun.stdout)["phase"] == "awaiting-switch"

    done = run_cli(data_dir, "rotate-key", "--finish", "--json", env=new_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["old_key_id"] == old_id
    assert json.loads(done.stdout)["new_key_id"] == new_id
    stale = run_cli(data_dir, "status", "--json", env=old_env)
    assert stale.returncode == 1
    assert json.loads(stale.stdout)["master_key_id"] == new_id


def test_usage_errors(data_dir: Path) -> None:
    both = run_cli(data_dir, "rotate-key", "--finish", "--new-key-env", "X")
    assert both.returncode == 2
    assert both.stderr == (
        "hybridge: give at most one of --new-key-env, --new-key-command, --new-key-file, --finish\n"
    )
    text, _ = b64_key()
    ambiguous = run_cli(
        data_dir,
        "status",
        env={"HYBRIDGE_MASTER_KEY": text, "HYBRIDGE_MASTER_KEY_COMMAND": "kms get"},
    )
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == (
        "hybridge: both HYBRIDGE_MASTER_KEY and HYBRIDGE_MASTER_KEY_COMMAND are set; set only "
        "one of them\n"
    )
