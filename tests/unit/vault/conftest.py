"""Fixtures of the vault's unit tests: a real SQLite node database and a real key file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vaultunit import fixed_clock

from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.vault import KeyFileSource, Vault


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "hybridge.db"


@pytest.fixture
def database(db_path: Path) -> Iterator[Database]:
    db = open_database(sqlite_url(db_path), "node")
    yield db
    db.dispose()


@pytest.fixture
def key_file(tmp_path: Path) -> KeyFileSource:
    return KeyFileSource(tmp_path / "keys" / "master.key")


@pytest.fixture
def vault(database: Database, key_file: KeyFileSource) -> Vault:
    return Vault.open(database, key_file, create=True, actor="test:init", clock=fixed_clock)
