"""Fixtures of the trust store tests: a store on a real SQLite file with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from truststore_state import NOW

import certs
from hybridge.truststore import TrustStore, open_trust_store


@pytest.fixture
def bootstrap_ca() -> certs.Issued:
    """A CA that is only in the bootstrap set."""
    return certs.build("Hybridge Bootstrap Root", key=certs.new_key("ec"))


@pytest.fixture
def bootstrap_file(tmp_path: Path, bootstrap_ca: certs.Issued) -> Path:
    path = tmp_path / "bootstrap.pem"
    path.write_bytes(bootstrap_ca.pem)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path, bootstrap_file: Path) -> Iterator[TrustStore]:
    with open_trust_store(data_dir, bootstrap_file=bootstrap_file, clock=lambda: NOW) as opened:
        yield opened


@pytest.fixture
def root() -> certs.Issued:
    return certs.build("Hybridge Test Root A", key=certs.new_key("ec"))


@pytest.fixture
def other_root() -> certs.Issued:
    return certs.build("Hybridge Test Root B", key=certs.new_key("ec"))
