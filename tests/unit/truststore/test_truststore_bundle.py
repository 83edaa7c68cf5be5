"""The exported bundle: deterministic, atomic, and repaired on open when it drifted."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest
from truststore_state import NOW, write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, fingerprint_sha256, load_certificates
from hybridge.truststore import TrustStore, TrustStoreIOError, open_trust_store
from hybridge.truststore.bundle import render_bundle, write_atomically
from hybridge.truststore.services import LOCK_NAME


def test_bundle_is_a_pure_function_of_the_set() -> None:
    a, b = certs.build("A").der, certs.build("B").der
    pairs = [(fingerprint_sha256(a), a), (fingerprint_sha256(b), b)]
    assert render_bundle(pairs) == render_bundle(list(reversed(pairs)))
    assert render_bundle([]) == b""
    text = render_bundle(pairs).decode()
    assert text.count("-----BEGIN CERTIFICATE-----") == 2
    assert [p.der for p in load_certificates(text.encode())] == sorted(
        [a, b], key=fingerprint_sha256
    )


def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.pem"
    write_atomically(target, b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pem"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_write_atomically_into_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "out.pem"
    with pytest.raises(TrustStoreIOError) as caught:
        write_atomically(target, b"x")
    assert str(caught.value) == (
        f"cannot write in {str(target.parent)!r}: No such file or directory"
    )


def _add_one(store: TrustStore, tmp_path: Path) -> None:
    root = certs.build("Bundle Root", key=certs.new_key("ec"))
    store.add_manual_files(
        [write(tmp_path / "r.pem", root.pem)], actor="admin", max_bytes=MAX_INPUT_BYTES
    )


def test_open_repairs_a_bundle_that_differs_from_the_database(
    store: TrustStore, bootstrap_file: Path, tmp_path: Path
) -> None:
    _add_one(store, tmp_path)
    good = store.bundle_path.read_bytes()
    store.bundle_path.write_bytes(good[: len(good) // 2])  # as if something truncated it

    with open_trust_store(store.data_dir, bootstrap_file=bootstrap_file, clock=lambda: NOW) as s:
        assert s.bundle_path.read_bytes() == good
        entry = s.audit_log()[0]
    assert (entry.action, entry.actor) == ("trust.bundle_repaired", "system:truststore")
    assert entry.detail == "trust-bundle.pem differed from the database; rewritten with 1 anchors"


def test_open_recreates_a_missing_bundle(
    store: TrustStore, bootstrap_file: Path, tmp_path: Path
) -> None:
    _add_one(store, tmp_path)
    good = store.bundle_path.read_bytes()
    store.bundle_path.unlink()
    with open_trust_store(store.data_dir, bootstrap_file=bootstrap_file) as reopened:
        assert reopened.bundle_path.read_bytes() == good
        assert reopened.audit_log()[0].detail == (
            "trust-bundle.pem was missing; rewritten with 1 anchors"
        )


def test_open_removes_temporary_files_of_a_killed_writer(
    store: TrustStore, bootstrap_file: Path
) -> None:
    leftover = store.data_dir / ".trust-bundle.pem.abc123.tmp"
    leftover.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB")
    with open_trust_store(store.data_dir, bootstrap_file=bootstrap_file) as reopened:
        assert not leftover.exists()
        assert reopened.audit_log() == ()  # the bundle itself was right: nothing to record


def test_a_new_store_gets_an_empty_bundle_without_an_audit_record(
    data_dir: Path, bootstrap_file: Path
) -> None:
    with open_trust_store(data_dir, bootstrap_file=bootstrap_file) as store:
        assert store.bundle_path.read_bytes() == b""
        assert store.audit_log() == ()


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    not_a_dir = write(tmp_path / "file", b"")
    with pytest.raises(TrustStoreIOError) as caught:
        open_trust_store(not_a_dir)
    assert str(caught.value) == (
        f"cannot create the data directory {str(not_a_dir)!r}: File exists"
    )


def test_export_failure_after_commit_says_the_change_was_saved(
    store: TrustStore, bootstrap_file: Path, tmp_path: Path
) -> None:
    store.bundle_path.unlink()
    store.bundle_path.mkdir()  # os.replace() cannot put a file over a directory
    with pytest.raises(TrustStoreIOError) as caught:
        _add_one(store, tmp_path)
    assert str(caught.value).startswith("the change was saved but trust-bundle.pem could not")
    assert str(caught.value).endswith("it is rewritten the next time the trust store is opened")
    assert len(store.list_anchors()) == 1

    store.bundle_path.rmdir()
    with open_trust_store(store.data_dir, bootstrap_file=bootstrap_file) as reopened:
        assert reopened.bundle_path.read_text().count("BEGIN CERTIFICATE") == 1


def test_concurrent_writers_leave_a_bundle_with_every_anchor(
    store: TrustStore, bootstrap_file: Path, tmp_path: Path
) -> None:
    # Separate stores on the same directory, as a CLI command and a running connector are.
    files = []
    for n in range(8):
        issued = certs.build(f"Concurrent Root {n}", key=certs.new_key("ec"))
        files.append(write(tmp_path / f"c{n}.pem", issued.pem))
    stores = [open_trust_store(store.data_dir, bootstrap_file=bootstrap_file) for _ in files]
    errors: list[BaseException] = []

    def add(s: TrustStore, path: Path) -> None:
        try:
            s.add_manual_files([path], actor="thread", max_bytes=MAX_INPUT_BYTES)
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=add, args=pair) for pair in zip(stores, files, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for s in stores:
        s.close()

    assert errors == []
    assert len(store.list_anchors()) == 8
    assert store.bundle_path.read_bytes() == store.export_pem().encode()
    assert len(store.audit_log()) == 8


def test_a_change_waits_for_the_data_dir_lock(store: TrustStore, tmp_path: Path) -> None:
    # Another process holding the lock (here: this test) keeps a change from interleaving.
    path = write(tmp_path / "locked.pem", certs.build("Locked Root", key=certs.new_key("ec")).pem)
    done = threading.Event()

    def add() -> None:
        store.add_manual_files([path], actor="thread", max_bytes=MAX_INPUT_BYTES)
        done.set()

    with (store.data_dir / LOCK_NAME).open("a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        worker = threading.Thread(target=add)
        worker.start()
        assert not done.wait(timeout=0.5)
        assert store.list_anchors() == ()
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert done.is_set()
    assert len(store.list_anchors()) == 1
