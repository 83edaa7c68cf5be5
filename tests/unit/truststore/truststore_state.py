"""Shared values of the trust store tests: the fixed clock and an independent view of the
data directory (read with ``sqlite3``, not through the store under test)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DiskState:
    """Everything a change could touch: anchor rows, trust state, audit count, bundle bytes."""

    anchors: tuple[tuple[object, ...], ...]
    state: tuple[tuple[object, ...], ...]
    audit_count: int
    bundle: bytes


def disk_state(data_dir: Path) -> DiskState:
    """Read the data directory directly, bypassing the code under test."""
    with sqlite3.connect(data_dir / "hybridge.db") as db:
        anchors = tuple(db.execute("SELECT * FROM anchors ORDER BY fingerprint_sha256"))
        state = tuple(db.execute("SELECT * FROM trust_state ORDER BY name"))
        (audit_count,) = db.execute("SELECT count(*) FROM audit_log").fetchone()
    return DiskState(anchors, state, audit_count, (data_dir / "trust-bundle.pem").read_bytes())


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return the path."""
    path.write_bytes(data)
    return path
