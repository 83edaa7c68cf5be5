"""Naming anchors by fingerprint or prefix: find, remove, and their rejecting twins."""

from __future__ import annotations

from pathlib import Path

import pytest
from truststore_state import disk_state, write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES, fingerprint_sha256
from hybridge.truststore import (
    AmbiguousFingerprint,
    AnchorNotFound,
    InvalidFingerprint,
    TrustStore,
)
from hybridge.truststore.fingerprints import normalize_fingerprint


def add(store: TrustStore, tmp_path: Path, *issued: certs.Issued) -> list[str]:
    path = write(tmp_path / "in.pem", b"".join(i.pem for i in issued))
    store.add_manual_files([path], actor="admin", max_bytes=MAX_INPUT_BYTES)
    return [fingerprint_sha256(i.der) for i in issued]


def roots_sharing_a_first_digit() -> tuple[certs.Issued, certs.Issued]:
    """Two roots whose fingerprints start with the same hex digit (found by trying)."""
    seen: dict[str, certs.Issued] = {}
    for n in range(64):
        issued = certs.build(f"Prefix Root {n}")
        first = fingerprint_sha256(issued.der)[0]
        if first in seen:
            return seen[first], issued
        seen[first] = issued
    raise AssertionError("17 roots always share a first digit; 64 cannot all differ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("AB:CD:0f", "abcd0f"), (" abcd ", "abcd"), ("Ab Cd", "abcd")],
)
def test_fingerprint_text_is_normalized(text: str, expected: str) -> None:
    assert normalize_fingerprint(text) == expected


@pytest.mark.parametrize("text", ["", "xyz", "12-34", "a" * 65, "::"])
def test_non_fingerprints_are_refused(text: str) -> None:
    with pytest.raises(InvalidFingerprint) as caught:
        normalize_fingerprint(text)
    assert str(caught.value) == (
        f"{text!r} is not a SHA-256 fingerprint; give up to 64 hex digits (colons allowed), "
        "as printed by 'hybridge trust list'"
    )


def test_find_accepts_a_unique_prefix_with_colons(
    store: TrustStore, root: certs.Issued, tmp_path: Path
) -> None:
    [fingerprint] = add(store, tmp_path, root)
    colons = ":".join(fingerprint[i : i + 2] for i in range(0, 10, 2)).upper()
    assert store.find(colons).anchor.fingerprint_sha256 == fingerprint


def test_ambiguous_prefix_lists_the_candidates(store: TrustStore, tmp_path: Path) -> None:
    first, second = roots_sharing_a_first_digit()
    fps = sorted(add(store, tmp_path, first, second))
    with pytest.raises(AmbiguousFingerprint) as caught:
        store.find(fps[0][0])
    assert caught.value.candidates == tuple(fps)
    assert str(caught.value) == (
        f"fingerprint prefix {fps[0][0]!r} matches 2 anchors ({fps[0]}, {fps[1]}); "
        "give more hex digits"
    )


def test_unknown_fingerprint_is_not_found(store: TrustStore) -> None:
    with pytest.raises(AnchorNotFound, match="no manual or cloud anchor has a fingerprint"):
        store.find("00" * 32)


def test_remove_deletes_audits_and_rewrites_the_bundle(
    store: TrustStore, root: certs.Issued, other_root: certs.Issued, tmp_path: Path
) -> None:
    keep, gone = add(store, tmp_path, root, other_root)
    removed = store.remove_manual([gone[:12]], actor="admin")

    assert removed == (gone,)
    assert [r.anchor.fingerprint_sha256 for r in store.list_anchors()] == [keep]
    entry = store.audit_log()[0]
    assert (entry.action, entry.added, entry.removed) == ("trust.remove", (), (gone,))
    bundle = store.bundle_path.read_text()
    assert keep in bundle and gone not in bundle


def test_remove_needs_eight_digits(store: TrustStore, root: certs.Issued, tmp_path: Path) -> None:
    [fingerprint] = add(store, tmp_path, root)
    before = disk_state(store.data_dir)
    with pytest.raises(InvalidFingerprint) as caught:
        store.remove_manual([fingerprint[:7]], actor="admin")
    assert str(caught.value) == (
        f"{fingerprint[:7]!r} is too short to remove by; give at least 8 hex digits of the "
        "SHA-256 fingerprint"
    )
    assert disk_state(store.data_dir) == before


def test_remove_is_all_or_nothing(store: TrustStore, root: certs.Issued, tmp_path: Path) -> None:
    [fingerprint] = add(store, tmp_path, root)
    before = disk_state(store.data_dir)
    with pytest.raises(AnchorNotFound):
        store.remove_manual([fingerprint, "ff" * 32], actor="admin")
    assert disk_state(store.data_dir) == before
