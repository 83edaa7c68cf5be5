"""Bad input twins: each is refused with its reason and leaves the store exactly as it was
(anchor rows, trust state, audit count and bundle bytes compared before and after)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from truststore_state import disk_state, write

import certs
from hybridge.core.pki import MAX_INPUT_BYTES
from hybridge.truststore import CertificateSource, CertificatesRejected, TrustStore

ROOT = certs.build("Hybridge Malformed Twin Root")


def _truncated_pem() -> bytes:
    return ROOT.pem[: len(ROOT.pem) // 2]


TWINS = {
    "truncated PEM": (
        _truncated_pem,
        "PEM block 1 ('CERTIFICATE') that begins on line 1 has no END line; "
        "the input looks truncated",
    ),
    "DER with trailing garbage": (
        lambda: ROOT.der + b"garbage!",
        f"the DER certificate is malformed: 8 bytes of trailing data after the "
        f"{len(ROOT.der)}-byte value; a DER file must hold exactly one value",
    ),
    "PKCS#7 with no certificate": (
        lambda: certs.pkcs7_der([]),
        "the PKCS#7 structure holds no certificate",
    ),
    "empty file": (
        lambda: b"",
        "the input is empty; expected PEM, DER or PKCS#7 certificates",
    ),
    "binary file": (
        lambda: b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8,
        "no certificate found in 2,055 bytes of binary data starting",
    ),
}


@pytest.fixture
def seeded(store: TrustStore, tmp_path: Path) -> TrustStore:
    """A store that already holds one anchor, so that 'unchanged' is not trivially empty."""
    store.add_manual_files(
        [write(tmp_path / "seed.pem", certs.build("Seed Root", key=certs.new_key("ec")).pem)],
        actor="test",
        max_bytes=MAX_INPUT_BYTES,
    )
    return store


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_malformed_input_is_refused_and_changes_nothing(
    seeded: TrustStore, tmp_path: Path, twin: str
) -> None:
    make, expected = TWINS[twin]
    good = write(tmp_path / "good.pem", ROOT.pem)
    bad = write(tmp_path / "bad.bin", make())
    before = disk_state(seeded.data_dir)

    with pytest.raises(CertificatesRejected) as caught:
        seeded.add_manual_files([good, bad], actor="test", max_bytes=MAX_INPUT_BYTES)

    [reject] = caught.value.rejects
    assert (reject.source, reject.index) == (str(bad), None)
    assert reject.reason.startswith(expected)
    assert str(caught.value).startswith(f"nothing was added: 1 certificate refused: {bad}: ")
    assert disk_state(seeded.data_dir) == before


def test_fifty_megabyte_file_is_refused_fast_naming_the_limit(
    seeded: TrustStore, tmp_path: Path
) -> None:
    big = tmp_path / "big.pem"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse: the test stays fast and small)
    before = disk_state(seeded.data_dir)

    started = time.monotonic()
    with pytest.raises(CertificatesRejected) as caught:
        seeded.add_manual_files([big], actor="test", max_bytes=MAX_INPUT_BYTES)
    elapsed = time.monotonic() - started

    [reject] = caught.value.rejects
    assert reject.reason == (
        f"the file is 52,428,800 bytes, over the limit of {MAX_INPUT_BYTES:,} bytes "
        "for a certificate file"
    )
    assert elapsed < 0.5
    assert disk_state(seeded.data_dir) == before


def test_in_memory_input_over_the_limit_is_refused_by_the_loader(seeded: TrustStore) -> None:
    before = disk_state(seeded.data_dir)
    with pytest.raises(CertificatesRejected) as caught:
        seeded.add_manual(
            [CertificateSource("upload", b"A" * (MAX_INPUT_BYTES + 1))], actor="web:admin"
        )
    assert "over the limit of 16,777,216 bytes" in caught.value.rejects[0].reason
    assert disk_state(seeded.data_dir) == before


def test_one_bad_file_among_many_good_ones_adds_nothing(seeded: TrustStore, tmp_path: Path) -> None:
    goods = [
        write(tmp_path / f"good{i}.pem", certs.build(f"Good {i}", key=certs.new_key("ec")).pem)
        for i in range(3)
    ]
    bad = write(tmp_path / "random.bin", os.urandom(1000))
    before = disk_state(seeded.data_dir)
    with pytest.raises(CertificatesRejected):
        seeded.add_manual_files([*goods, bad], actor="test", max_bytes=MAX_INPUT_BYTES)
    assert disk_state(seeded.data_dir) == before
