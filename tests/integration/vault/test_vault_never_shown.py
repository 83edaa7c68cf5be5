"""Issue 6 item 2, vault part: the plaintext is never shown, byte for byte.

A known password goes through the whole vault life (store, read, replace, rotate both keys,
tamper, wrong key, lost key); then the SQLite file and its WAL, the structlog and logging
output (SQLAlchemy statement logging included), every exception's text, repr and traceback
with locals, the reprs of every value object, and the CLI's output are searched for the
password in UTF-8, UTF-16-LE/BE, base64 (standard and URL-safe, of UTF-8 and UTF-16-LE)
and hex. The master key and the data key are searched for in the database as well.
"""

from __future__ import annotations

import base64
import io
import logging
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from vaultcli import PASSWORD, run_cli

from hybridge.storage.db import open_database, sqlite_url
from hybridge.vault import (
    EnvKeySource,
    KeyFileSource,
    MasterKeyError,
    Secret,
    SecretDecryptionError,
    Vault,
    VaultError,
    configured_source,
    read_status,
    rotate_data_key,
    rotate_master_key,
)
from hybridge.vault.envelope import new_key, unwrap
from hybridge.vault.keyring import read_wraps


def forms(value: bytes) -> dict[str, bytes]:
    """Every encoding under which a leaked value could be hiding."""
    text = value.decode("utf-8")
    utf16 = text.encode("utf-16-le")
    return {
        "utf-8": value,
        "utf-16-le": utf16,
        "utf-16-be": text.encode("utf-16-be"),
        "base64": base64.b64encode(value),
        "base64-urlsafe": base64.urlsafe_b64encode(value),
        "base64(utf-16-le)": base64.b64encode(utf16),
        "hex": value.hex().encode(),
        "HEX": value.hex().upper().encode(),
    }


def leaks(haystack: bytes, value: bytes) -> list[str]:
    """The names of the forms of ``value`` found in ``haystack``."""
    return [name for name, needle in forms(value).items() if needle in haystack]


NEEDLE = PASSWORD.encode()


@pytest.mark.parametrize("name", list(forms(NEEDLE)))
def test_the_search_finds_each_form(name: str) -> None:
    # The detector must be able to fail: each form planted in noise is found.
    planted = b"\x00noise" + forms(NEEDLE)[name] + b"noise\x00"
    assert name in leaks(planted, NEEDLE)
    assert leaks(b"\x00noise only", NEEDLE) == []


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """structlog rendered to text, and stdlib logging at DEBUG including SQLAlchemy's SQL."""
    buffer = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    engine_logger = logging.getLogger("sqlalchemy.engine")
    previous = engine_logger.level
    engine_logger.setLevel(logging.DEBUG)  # statements and their parameters
    try:
        with caplog.at_level(logging.DEBUG):
            yield buffer
    finally:
        engine_logger.setLevel(previous)
        structlog.reset_defaults()


def snapshot(db_path: Path) -> bytes:
    """The database file and its WAL (and shared memory) as they are right now."""
    parts = []
    for suffix in ("", "-wal", "-shm"):
        path = db_path.with_name(db_path.name + suffix)
        if path.exists():
            parts.append(path.read_bytes())
    return b"".join(parts)


def error_texts(exc: BaseException) -> str:
    """Everything an exception can show: str, repr, chained causes, traceback with locals."""
    rendered = "".join(
        traceback.TracebackException.from_exception(exc, capture_locals=True).format()
    )
    return f"{exc}\n{exc!r}\n{rendered}"


def test_plaintext_never_appears(
    data_dir: Path, captured_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    db_path = data_dir / "hybridge.db"
    database = open_database(sqlite_url(db_path), "node")
    source = configured_source(data_dir, {})
    assert isinstance(source, KeyFileSource)
    vault = Vault.open(database, source, create=True, actor="admin@example.org")
    shown: list[str] = []
    errors: list[BaseException] = []

    ref = vault.put(
        "exchange.impersonation", "config-1", Secret.from_text(PASSWORD), actor="exchange-admin"
    )
    secret = vault.get(ref)
    assert secret.reveal_text() == PASSWORD  # the value is really there to be leaked
    shown += [repr(secret), str(secret), f"{secret}", repr(ref), repr(vault)]
    shown += [repr(vault.metadata(ref)), repr(vault.list()), repr(source.load())]
    vault.put("exchange.impersonation", "config-1", Secret.from_text(PASSWORD), actor="again")
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(vault)
    errors.append(pickled.value)

    # A put that fails after the value was wrapped: its traceback locals show Secret(***).
    with pytest.raises(VaultError) as bad_put:
        vault.put("Bad Purpose", "x", Secret.from_text(PASSWORD), actor="a")
    errors.append(bad_put.value)

    rotate_master_key(database, source, actor="admin")
    rotate_data_key(database, source, actor="admin")
    assert Vault.open(database, source).get(ref).reveal_text() == PASSWORD
    shown.append(repr(read_status(database, source)))

    with database.transaction() as session:
        wraps = read_wraps(session)
    master = source.load()
    data_key = unwrap(master.material, wraps[0].wrapped_key)
    database_bytes = snapshot(db_path)  # while open: the WAL still holds recent pages

    # Tamper: the error names the record and the reason, not the value.
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE vault_secrets SET version = version + 1")
    with pytest.raises(SecretDecryptionError) as tampered:
        vault.get(ref)
    errors.append(tampered.value)
    # Wrong key and lost key.
    wrong = EnvKeySource("K", {"K": base64.b64encode(new_key().reveal()).decode()})
    with pytest.raises(MasterKeyError) as wrong_key:
        Vault.open(database, wrong)
    errors.append(wrong_key.value)
    source.path.rename(source.path.with_name("moved.key"))
    with pytest.raises(MasterKeyError) as lost_key:
        Vault.open(database, source)
    errors.append(lost_key.value)
    source.path.with_name("moved.key").rename(source.path)
    database_bytes += snapshot(db_path)
    database.dispose()
    database_bytes += snapshot(db_path)

    status_json = run_cli(data_dir, "status", "--json")
    status_text = run_cli(data_dir, "status", "--verify")
    # The tampered secret row does not touch the key wraps: the key still opens the vault.
    assert status_json.returncode == 0, status_json.stderr
    assert '"key_ok": true' in status_json.stdout
    # --verify decrypts every secret: the tampered one is named, its value is not shown.
    assert status_text.returncode == 1
    assert f"secret {ref.secret_id} (exchange.impersonation of record 'config-1'" in (
        status_text.stdout
    )

    logs = captured_logs.getvalue() + caplog.text
    assert "vault.secret.set" in logs and "INSERT INTO vault_secrets" in logs  # really captured
    everything = {
        "database and WAL": database_bytes,
        "logs": logs.encode(),
        "exceptions": "\n".join(error_texts(e) for e in errors).encode(),
        "reprs": "\n".join(shown).encode(),
        "vault status --json": (status_json.stdout + status_json.stderr).encode(),
        "vault status": (status_text.stdout + status_text.stderr).encode(),
    }
    for where, haystack in everything.items():
        assert leaks(haystack, NEEDLE) == [], f"the password shows in {where}"
    # Keys stay out of the database, and out of logs and errors too.
    for key in (master.material.reveal(), data_key.reveal()):
        for where, haystack in everything.items():
            assert key not in haystack, where
            assert base64.b64encode(key) not in haystack, where
    assert "Secret(***)" in everything["exceptions"].decode()  # locals were rendered
