"""The whole Mozilla bundle shipped by certifi, imported in one add, counted independently."""

from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from hybridge.core.pki import MAX_INPUT_BYTES
from hybridge.truststore import TrustStore


def openssl_count(path: Path) -> int:
    """How many certificates OpenSSL finds in the file (an independent parser)."""
    result = subprocess.run(
        ["openssl", "storeutl", "-noout", "-certs", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.search(r"Total found: (\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return int(match.group(1))


def test_whole_certifi_bundle_is_imported_in_one_add(store: TrustStore) -> None:
    bundle = Path(certifi.where())
    expected = openssl_count(bundle)
    with warnings.catch_warnings():
        # certifi still ships a root with a non-positive serial; cryptography warns about it.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        assert expected == len(x509.load_pem_x509_certificates(bundle.read_bytes()))
    assert expected > 100

    result = store.add_manual_files([bundle], actor="admin", max_bytes=MAX_INPUT_BYTES)

    assert len(result.added) == expected
    assert result.duplicates == ()
    reports = store.list_anchors()
    assert len(reports) == expected
    assert all(r.anchor.source.value == "manual" for r in reports)
    assert store.bundle_path.read_text().count("-----BEGIN CERTIFICATE-----") == expected
    assert openssl_count(store.bundle_path) == expected
    [entry] = store.audit_log()
    assert len(entry.added) == expected
