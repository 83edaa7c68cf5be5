"""Master key sources: key file, environment variable, command (real subprocesses)."""

from __future__ import annotations

import base64
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

from hybridge.vault import (
    CommandKeySource,
    EnvKeySource,
    KeyFileSource,
    MasterKeyError,
    MasterKeyInvalidError,
    MasterKeyNotFoundError,
    configured_source,
)
from hybridge.vault.envelope import key_id, new_key
from hybridge.vault.keys import decode_key, encode_key

KEY = new_key()
KEY_B64 = base64.b64encode(KEY.reveal()).decode()


def printer(text: str, *, status: int = 0) -> tuple[str, ...]:
    """argv of a real process printing ``text`` and exiting with ``status``."""
    code = f"import sys; sys.stdout.write({text!r}); sys.exit({status})"
    return (sys.executable, "-c", code)


def test_decode_accepts_a_base64_line() -> None:
    master = decode_key(encode_key(KEY), "test input")
    assert master.material == KEY
    assert master.key_id == key_id(KEY)
    assert master.location == "test input"
    assert "material" not in repr(master) and KEY_B64 not in repr(master)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            b"not base64 at all!",
            "the master key from X is not valid base64; expected one base64 line of a "
            "32-byte key (44 characters)",
        ),
        (
            base64.b64encode(b"k" * 16),
            "the master key from X decodes to 16 bytes; expected 32 (AES-256)",
        ),
        (
            b"A" * 5000,
            "the master key from X is 5000 bytes long; expected one base64 line of a "
            "32-byte key (44 characters)",
        ),
    ],
)
def test_decode_rejects_without_quoting_the_input(text: bytes, message: str) -> None:
    with pytest.raises(MasterKeyInvalidError) as info:
        decode_key(text, "X")
    assert str(info.value) == message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_key_file_create_is_0600_in_0700_and_loads(tmp_path: Path) -> None:
    source = KeyFileSource(tmp_path / "keys" / "master.key")
    created = source.create()
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(source.path.parent.stat().st_mode) == 0o700
    loaded = source.load()
    assert loaded.material == created.material
    assert loaded.key_id == created.key_id
    assert loaded.location == f"key file {source.path}"


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    source = KeyFileSource(tmp_path / "keys" / "master.key")
    first = source.create()
    with pytest.raises(MasterKeyError) as info:
        source.create()
    assert str(info.value) == f"refusing to overwrite the existing key file {source.path}"
    assert source.load().material == first.material


def test_missing_key_file(tmp_path: Path) -> None:
    source = KeyFileSource(tmp_path / "keys" / "master.key")
    assert not source.exists()
    with pytest.raises(MasterKeyNotFoundError) as info:
        source.load()
    assert str(info.value) == f"the key file {source.path} does not exist"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    source = KeyFileSource(tmp_path / "keys" / "master.key")
    source.create()
    source.path.chmod(mode)
    with pytest.raises(MasterKeyInvalidError) as info:
        source.load()
    assert str(info.value) == (
        f"the key file {source.path} has mode {mode:04o}; it must not be readable by group "
        f"or others (chmod 600 {source.path})"
    )


@pytest.mark.parametrize("mode", [0o770, 0o1777, 0o757])
def test_key_directory_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    source = KeyFileSource(tmp_path / "keys" / "master.key")
    source.create()
    source.path.parent.chmod(mode)
    try:
        with pytest.raises(MasterKeyInvalidError) as info:
            source.load()
    finally:
        source.path.parent.chmod(0o700)
    assert str(info.value) == (
        f"the directory {source.path.parent} of the master key file has mode {mode:04o}; it "
        f"must not be writable by group or others (chmod 700 {source.path.parent})"
    )
    source.path.parent.chmod(0o750)  # readable by a backup group is fine
    assert source.load().key_id


def test_key_file_symlink_is_refused(tmp_path: Path) -> None:
    real = KeyFileSource(tmp_path / "real" / "master.key")
    real.create()
    link = tmp_path / "link.key"
    link.symlink_to(real.path)
    with pytest.raises(MasterKeyNotFoundError, match=r"^cannot open the key file .*link\.key"):
        KeyFileSource(link).load()


def test_env_source() -> None:
    source = EnvKeySource("MY_KEY", {"MY_KEY": KEY_B64 + "\n"})
    assert source.load().material == KEY
    assert source.location == "environment variable MY_KEY"
    assert KEY_B64 not in repr(source)
    with pytest.raises(MasterKeyNotFoundError) as info:
        EnvKeySource("MY_KEY", {"MY_KEY": "  "}).load()
    assert str(info.value) == "the environment variable MY_KEY is not set or empty"
    with pytest.raises(MasterKeyInvalidError) as bad:
        EnvKeySource("MY_KEY", {"MY_KEY": KEY_B64[:-4]}).load()
    assert str(bad.value) == (
        "the master key from environment variable MY_KEY decodes to 30 bytes; expected 32 (AES-256)"
    )


def test_command_source_runs_a_real_process() -> None:
    source = CommandKeySource(printer(KEY_B64 + "\n"))
    assert source.load().material == KEY
    assert source.location == f"command {shlex.join(source.argv)!r}"


def test_command_source_failures() -> None:
    failing = CommandKeySource(printer("", status=3))
    with pytest.raises(MasterKeyNotFoundError) as info:
        failing.load()
    assert str(info.value) == f"the master key {failing.location} exited with status 3"

    missing = CommandKeySource(("/nonexistent/kms-tool", "get"))
    with pytest.raises(MasterKeyNotFoundError) as info:
        missing.load()
    assert str(info.value) == (
        f"the master key {missing.location} cannot run: '/nonexistent/kms-tool' not found"
    )

    slow = CommandKeySource((sys.executable, "-c", "import time; time.sleep(30)"), timeout=0.5)
    with pytest.raises(MasterKeyNotFoundError) as info:
        slow.load()
    assert str(info.value) == f"the master key {slow.location} did not finish within 0.5 s"

    garbage = CommandKeySource(printer("hello"))
    with pytest.raises(MasterKeyInvalidError, match="is not valid base64"):
        garbage.load()


def test_command_source_does_not_use_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    # With a shell, "; touch" would run a second command. Without one, it is an argument.
    source = CommandKeySource.parse(f"{shlex.quote(sys.executable)} -c 'print(1)' ; touch {marker}")
    with pytest.raises(MasterKeyInvalidError):
        source.load()
    assert not marker.exists()


def test_command_parse_rejects_bad_quoting_and_empty() -> None:
    with pytest.raises(MasterKeyInvalidError) as info:
        CommandKeySource.parse("kms get 'unterminated")
    assert str(info.value) == (
        'cannot split the HYBRIDGE_MASTER_KEY_COMMAND command "kms get \'unterminated": '
        "No closing quotation"
    )
    with pytest.raises(MasterKeyInvalidError, match=r"^the HYBRIDGE_MASTER_KEY_COMMAND command"):
        CommandKeySource.parse("   ")


def test_configured_source_selection(tmp_path: Path) -> None:
    default = configured_source(tmp_path, {})
    assert default == KeyFileSource(tmp_path / "keys" / "master.key")
    override = configured_source(tmp_path, {"HYBRIDGE_MASTER_KEY_FILE": "/etc/hb/key"})
    assert override == KeyFileSource(Path("/etc/hb/key"))
    env = configured_source(tmp_path, {"HYBRIDGE_MASTER_KEY": KEY_B64})
    assert isinstance(env, EnvKeySource) and env.load().material == KEY
    command = configured_source(tmp_path, {"HYBRIDGE_MASTER_KEY_COMMAND": "kms get 'a b'"})
    assert command == CommandKeySource(("kms", "get", "a b"))
    with pytest.raises(MasterKeyInvalidError) as info:
        configured_source(
            tmp_path, {"HYBRIDGE_MASTER_KEY": KEY_B64, "HYBRIDGE_MASTER_KEY_COMMAND": "kms"}
        )
    assert str(info.value) == (
        "both HYBRIDGE_MASTER_KEY and HYBRIDGE_MASTER_KEY_COMMAND are set; set only one of them"
    )
    assert os.environ is not None  # the default mapping is the process environment
