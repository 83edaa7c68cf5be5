"""Fixtures of the vault's integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "connector"
    path.mkdir(mode=0o700)
    return path
