"""Peer verification cost: ``verify_peer`` against ``openssl verify``, same chains, same run.

A 3-certificate chain (leaf, intermediate, root) is checked against a store of 150 anchors,
over a batch of distinct leaves:

- ours: ``core.tlsverify.verify_peer`` (path + key strength + zone name rule), with the
  ``AnchorSet`` built once — as in production, where it is rebuilt only when the trust
  store changes (the one-off cost of that build is printed too);
- peer: one ``openssl verify`` process over the whole batch
  (``-CAfile <150 anchors> -untrusted <intermediate> -purpose sslserver
  -verify_hostname <name> leaf-*.pem``); its per-verification cost is the *marginal* one,
  (time for N leaves - time for 1 leaf) / (N - 1), so process start and CA-file parsing
  are not charged to it.

Both wall time and CPU time are printed: on a shared machine the wall time includes
waiting for a CPU, so the CPU figures are the ones to compare.

Goal (issue 3): < 0.2 ms per verification, far below a TLS handshake. The floor is the
signature checks themselves (two per chain): RSA-2048 verification is cheap, ECDSA P-256
verification costs ~0.1 ms each with OpenSSL, so a P-256 chain cannot reach 0.2 ms.

Run: ``.venv/bin/python bench/verify.py [--leaves 2000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    NamePolicy,
    PeerRole,
    anchor_set_for,
    verify_peer,
)

NAME = "callservice.example.com"
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
ANCHORS = 150
NOW = dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(
    common_name: str,
    key: Key,
    issuer: tuple[x509.Name, Key] | None,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (_name(common_name), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf(index: int, issuer: x509.Certificate, issuer_key: Key) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())  # leaf keys are never verified with
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"leaf {index}"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _new_key(kind: str) -> Key:
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def measure(
    kind: str, count: int, openssl: str, others: list[x509.Certificate]
) -> dict[str, float]:
    """Per-verification seconds for us and for openssl, root and intermediate keys of ``kind``."""
    root_key = _new_key(kind)
    root = _ca("Bench Root", root_key, None)
    # The real root sits in the middle of the store, as it would in a real list.
    anchors = [*others[: len(others) // 2], root, *others[len(others) // 2 :]]
    inter_key = _new_key(kind)
    inter = _ca("Bench Intermediate", inter_key, (root.subject, root_key))
    leaves = [_leaf(i, inter, inter_key) for i in range(count)]
    names = NamePolicy(NAME)

    started = time.perf_counter()
    anchor_set: AnchorSet = anchor_set_for(anchors)
    store_build = time.perf_counter() - started

    def ours_once(leaf: x509.Certificate) -> object:
        return verify_peer(
            leaf, [inter], anchors=anchor_set, names=names, role=PeerRole.SERVER, at=NOW
        )

    # Warm-up, and a correctness check: every leaf must be accepted.
    assert all(isinstance(ours_once(leaf), Accepted) for leaf in leaves[:50])
    started, cpu_started = time.perf_counter(), time.process_time()
    verdicts = [ours_once(leaf) for leaf in leaves]
    ours = (time.perf_counter() - started) / count
    ours_cpu = (time.process_time() - cpu_started) / count
    assert all(isinstance(v, Accepted) for v in verdicts)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ca_file = directory / "anchors.pem"
        ca_file.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in anchors))
        untrusted = directory / "intermediate.pem"
        untrusted.write_bytes(inter.public_bytes(Encoding.PEM))
        paths = []
        for index, leaf in enumerate(leaves):
            path = directory / f"leaf-{index}.pem"
            path.write_bytes(leaf.public_bytes(Encoding.PEM))
            paths.append(str(path))
        base = [
            openssl,
            "verify",
            "-CAfile",
            str(ca_file),
            "-untrusted",
            str(untrusted),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            NAME,
        ]

        def run(files: list[str]) -> tuple[float, float]:
            """(wall seconds, CPU seconds) of one openssl process over ``files``."""
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run([*base, *files], capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0 or done.stdout.count(": OK") != len(files):
                raise SystemExit(
                    f"openssl verify failed: {done.stdout[-300:]} {done.stderr[-300:]}"
                )
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            return elapsed, cpu

        ones = [run(paths[:1]) for _ in range(3)]
        one_wall, one_cpu = min(w for w, _ in ones), min(c for _, c in ones)
        batch_wall, batch_cpu = run(paths)
    return {
        "store_build": store_build,
        "ours": ours,
        "ours_cpu": ours_cpu,
        "openssl_marginal": (batch_wall - one_wall) / (count - 1),
        "openssl_marginal_cpu": (batch_cpu - one_cpu) / (count - 1),
        "openssl_whole": batch_wall / count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1000, help="distinct leaves per batch")
    parser.add_argument(
        "--keys",
        default="rsa2048,p256",
        help="comma-separated key types of root and intermediate: rsa2048, p256",
    )
    args = parser.parse_args()
    openssl = shutil.which("openssl")
    if openssl is None:
        print(
            "openssl not found on PATH (scripts/install-system-deps installs it)", file=sys.stderr
        )
        return 2
    version = subprocess.run(
        [openssl, "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    others = [_ca(f"Other Root {i}", _new_key("p256"), None) for i in range(ANCHORS - 1)]
    print(f"3-certificate chain, {ANCHORS} anchors, {args.leaves} distinct leaves; {version}")
    goal = 0.2e-3
    for kind in args.keys.split(","):
        result = measure(kind, args.leaves, openssl, others)
        ours, theirs = result["ours"], result["openssl_marginal"]
        ours_cpu, theirs_cpu = result["ours_cpu"], result["openssl_marginal_cpu"]
        print(f"[{kind} root and intermediate]")
        build_ms = result["store_build"] * 1e3
        print(f"  anchor set build (once per trust-store version): {build_ms:.2f} ms")
        print(
            f"  hybridge verify_peer:        {ours * 1e3:.4f} ms/verification ({1 / ours:,.0f}/s)"
        )
        print(
            f"  openssl verify (marginal):   {theirs * 1e3:.4f} ms/verification "
            f"({1 / theirs:,.0f}/s); whole process: {result['openssl_whole'] * 1e3:.4f} ms"
        )
        print(
            f"  CPU time per verification:   hybridge {ours_cpu * 1e3:.4f} ms, "
            f"openssl {theirs_cpu * 1e3:.4f} ms"
        )
        print(
            f"  ratio hybridge/openssl: wall {ours / theirs:.2f}, CPU {ours_cpu / theirs_cpu:.2f} "
            "(below 1: we are faster)"
        )
        # CPU time is the honest figure on a shared machine (wall time includes waiting).
        print(f"  goal < 0.2 ms per verification (CPU): {'met' if ours_cpu < goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
