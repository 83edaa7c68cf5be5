"""A real ``hybridge trust`` process killed (SIGKILL) between its database commit and its
bundle export, or in the middle of the export: the bundle on disk is the old complete one,
never a partial one, and the next start repairs it from the database.

The crash points are the test hook ``HYBRIDGE_TEST_CRASH_POINT`` of
``hybridge.truststore.bundle`` (the process kills itself at exactly that point).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, fingerprint_sha256, load_certificates
from hybridge.truststore import open_trust_store
from hybridge.truststore.bundle import CRASH_POINT_ENV, crash_point


def hybridge(data_dir: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_POINT_ENV}
    if crash:
        env[CRASH_POINT_ENV] = crash
    return subprocess.run(
        [sys.executable, "-m", "hybridge", "trust", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def bundle_ders(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [] if not data else [p.der for p in load_certificates(data)]


def db_fingerprints(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "hybridge.db") as db:
        return {row[0] for row in db.execute("SELECT fingerprint_sha256 FROM anchors")}


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, Path, bytes, bytes]:
    """A data dir holding anchor A (the old bundle) and a file with new anchor B."""
    data_dir = tmp_path / "data"
    old = certs.build("Crash Old Root", key=certs.new_key("ec"))
    new = certs.build("Crash New Root", key=certs.new_key("ec"))
    (tmp_path / "old.pem").write_bytes(old.pem)
    (tmp_path / "new.pem").write_bytes(new.pem)
    with open_trust_store(data_dir) as store:
        store.add_manual_files([tmp_path / "old.pem"], actor="test", max_bytes=MAX_INPUT_BYTES)
    return data_dir, tmp_path / "new.pem", old.der, new.der


@pytest.mark.parametrize("crash", ["after-commit", "mid-export"])
def test_killed_writer_leaves_the_old_bundle_whole_and_the_next_start_repairs_it(
    prepared: tuple[Path, Path, bytes, bytes], crash: str
) -> None:
    data_dir, new_file, old_der, new_der = prepared
    bundle = data_dir / "trust-bundle.pem"
    old_bytes = bundle.read_bytes()

    killed = hybridge(data_dir, "add", str(new_file), crash=crash)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # The commit happened: the database has both anchors.
    assert db_fingerprints(data_dir) == {fingerprint_sha256(old_der), fingerprint_sha256(new_der)}
    # The bundle is the old complete one, byte for byte: never partial.
    assert bundle.read_bytes() == old_bytes
    assert bundle_ders(bundle) == [old_der]
    leftovers = list(data_dir.glob(".trust-bundle.pem.*.tmp"))
    if crash == "mid-export":
        # The half-written temporary file is there, and it is not the bundle.
        assert len(leftovers) == 1
        assert 0 < leftovers[0].stat().st_size < len(old_bytes) * 2

    # The next start repairs the bundle from the database.
    with open_trust_store(data_dir) as store:
        actions = [e.action for e in store.audit_log()]
        assert store.bundle_path.read_bytes() == store.export_pem().encode()
    assert sorted(bundle_ders(bundle)) == sorted([old_der, new_der])
    assert not list(data_dir.glob(".trust-bundle.pem.*.tmp"))
    assert actions == ["trust.bundle_repaired", "trust.add", "trust.add"]


def test_crash_hook_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown crash point 'after-comit'"):
        crash_point("after-comit")


def test_exported_bundle_is_read_by_openssl(prepared: tuple[Path, Path, bytes, bytes]) -> None:
    data_dir, _new, old_der, _ = prepared
    out = subprocess.run(
        ["openssl", "x509", "-in", str(data_dir / "trust-bundle.pem"), "-outform", "DER"],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    assert out == old_der
