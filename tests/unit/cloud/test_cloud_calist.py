"""The default published list: the roots the cloud's own certificate chains end at."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import trustme
from cloud_helpers import MovableClock, make_cloud
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hybridge.cloud import calist


def _certs(pems: list[trustme.Blob]) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificate(p.bytes()) for p in pems)


def test_find_roots_completes_a_chain_from_the_candidates() -> None:
    root = trustme.CA()
    issuing = root.create_child_ca()
    chain = _certs(issuing.issue_cert("cloud.test").cert_chain_pems)
    assert len(chain) == 2  # leaf + intermediate, no root: as servers send them
    root_cert = _certs([root.cert_pem])[0]
    decoys = [_certs([trustme.CA().cert_pem])[0] for _ in range(3)]
    roots, missing = calist.find_roots([chain], [*decoys, root_cert])
    assert roots == [root_cert] and missing == []


def _impostor(name: x509.Name) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_same_name_other_key_is_not_taken_for_the_root() -> None:
    root = trustme.CA()
    leaf_chain = _certs(root.issue_cert("cloud.test").cert_chain_pems)
    impostor = _impostor(leaf_chain[-1].issuer)
    roots, missing = calist.find_roots([leaf_chain], [impostor])
    assert roots == []
    assert missing == [leaf_chain[-1].issuer.rfc4514_string()]


def test_self_signed_end_is_its_own_root_and_duplicates_collapse() -> None:
    root = trustme.CA()
    root_cert = _certs([root.cert_pem])[0]
    chain = (*_certs(root.issue_cert("a.test").cert_chain_pems), root_cert)
    other = _certs(root.issue_cert("callservice.test").cert_chain_pems)
    roots, missing = calist.find_roots([chain, other], [root_cert])
    assert roots == [root_cert] and missing == []


def test_without_ca_roots_a_private_root_is_named_in_the_log(
    tmp_path: Path, demo_pki, clock: MovableClock, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="hybridge.cloud")
    cloud = make_cloud(tmp_path, demo_pki, clock, ca_roots=None)
    with cloud.services.database.transaction() as db:
        assert calist.current_version(db) is None
    assert "no root found for issuer 'CN=Hybridge Demo Public Root CA" in caplog.text
    cloud.services.database.dispose()
