"""``hybridge demo``: a guided tour of what Hybridge does so far, on a temporary data dir.

At this stage the tour covers the connector's trust store: it generates a few CA
certificates on the fly (real keys, real signatures), then adds, refuses, lists, shows,
checks, exports and removes them with the same ``TrustStore`` the CLI uses. Later issues
grow it into the three-role demo (cloud, connector, edge on localhost).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import structlog
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from hybridge.cli.trust import anchors_table, show_lines
from hybridge.core.errors import HybridgeError
from hybridge.core.pki import MAX_INPUT_BYTES
from hybridge.truststore import TrustStore, TrustUse, open_trust_store


@dataclass(frozen=True)
class DemoCertificate:
    """A generated certificate and the key that signed it (the demo's own tiny PKI)."""

    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def make_certificate(
    common_name: str,
    *,
    not_before: datetime,
    not_after: datetime,
    ca: bool = True,
    issuer: DemoCertificate | None = None,
) -> DemoCertificate:
    """A real EC P-256 certificate: self-signed unless ``issuer`` is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hybridge demo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    signer_key = key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False
        )
    return DemoCertificate(common_name, builder.sign(signer_key, hashes.SHA256()), key)


def _step(console: Console, number: int, title: str) -> None:
    console.print()
    console.rule(f"[bold]{number}. {title}")


def _tour(console: Console, store: TrustStore, work: Path) -> None:
    now = datetime.now(UTC)
    root = make_certificate(
        "Demo Root CA", not_before=now - timedelta(days=1), not_after=now + timedelta(days=3650)
    )
    exchange_ca = make_certificate(
        "Demo Exchange CA", not_before=now - timedelta(days=700), not_after=now + timedelta(days=9)
    )
    # Like the seed's Baltimore CyberTrust Root, which expired on 2025-05-12.
    old_root = make_certificate(
        "Demo Old Root (expired like Baltimore)",
        not_before=datetime(2000, 5, 12, 18, 46, tzinfo=UTC),
        not_after=datetime(2025, 5, 12, 23, 59, tzinfo=UTC),
    )
    cloud_root = make_certificate(
        "Demo Cloud Root CA",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=3650),
    )
    server = make_certificate(
        "exchange.example.test",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=90),
        ca=False,
        issuer=root,
    )
    files = {}
    for cert in (root, exchange_ca, old_root, server):
        path = work / (cert.name.split(" (")[0].lower().replace(" ", "-") + ".pem")
        path.write_bytes(cert.pem())
        files[cert.name] = path

    _step(console, 1, "The hidden bootstrap set")
    # The use log carries every fingerprint (117 with the packaged set): the tour captures
    # the event to summarise it instead of printing it whole.
    with structlog.testing.capture_logs() as logs:
        store.ssl_context(TrustUse.REGISTRATION)
    used = logs[-1]
    console.print(
        f"The connector ships {used['count']} bootstrap roots ({used['origin']}). They are used "
        "only to reach the cloud's registration endpoint, never listed, never exported; every "
        f"use is logged: [cyan]{used['event']}[/] with {used['count']} fingerprints "
        f"(first {used['fingerprints'][0][:16]}…)."
    )

    _step(console, 2, "An admin adds CA certificates: hybridge trust add")
    added = store.add_manual_files(
        [files[root.name], files[exchange_ca.name], files[old_root.name]],
        actor="demo:admin",
        max_bytes=MAX_INPUT_BYTES,
    )
    for fingerprint in added.added:
        console.print(f"  added [green]{fingerprint}[/]")
    again = store.add_manual_files(
        [files[root.name]], actor="demo:admin", max_bytes=MAX_INPUT_BYTES
    )
    console.print(
        f"  adding {files[root.name].name} again: {len(again.duplicates)} duplicate skipped"
    )

    _step(console, 3, "All or nothing: a server certificate is not an anchor")
    before = len(store.list_anchors())
    try:
        store.add_manual_files(
            [files[server.name], files[root.name]], actor="demo:admin", max_bytes=MAX_INPUT_BYTES
        )
    except HybridgeError as exc:
        console.print(f"  [red]refused:[/] {exc}")
    console.print(f"  anchors before: {before}, after: {len(store.list_anchors())} (unchanged)")

    _step(console, 4, "The cloud pushes its CA list (applied atomically)")
    result = store.apply_cloud_set([cloud_root.der(), root.der()], actor="demo:cloud", sequence=1)
    console.print(
        f"  cloud set 1: {len(result.added)} added, {len(result.removed)} removed; "
        f"{len(result.kept_manual)} already manual, kept as manual (a push never touches them)"
    )

    _step(console, 5, "hybridge trust list")
    console.print(anchors_table(store.list_anchors()))

    _step(console, 6, "hybridge trust show (a unique fingerprint prefix is enough)")
    cloud_fp = result.added[0]
    report = store.find(cloud_fp[:10])
    table = Table(show_header=False, box=None)
    for label, value in show_lines(report):
        table.add_row(f"[bold]{label}", value)
    console.print(table)

    _step(console, 7, "Cloud anchors are managed by the cloud")
    try:
        store.remove_manual([cloud_fp], actor="demo:admin")
    except HybridgeError as exc:
        console.print(f"  [red]refused:[/] {exc}")

    _step(console, 8, "hybridge trust check --warn-days 30")
    bad = [r for r in store.list_anchors(warn_days=30) if not r.ok]
    for r in bad:
        notes = "; ".join(r.assessment.problems + r.assessment.warnings)
        console.print(f"  [yellow]{r.assessment.status.value}[/] {r.info.subject}: {notes}")
    console.print(f"  → exit status {1 if bad else 0} ({len(bad)} anchors need attention)")

    _step(console, 9, "The platform bundle, rewritten atomically after every change")
    bundle = store.bundle_path.read_text()
    console.print(
        f"  {store.bundle_path}: {bundle.count('BEGIN CERTIFICATE')} anchors (manual + cloud), "
        "no bootstrap root; 'hybridge trust export' prints the same bundle"
    )

    _step(console, 10, "The admin removes the expired root; the audit log")
    store.remove_manual([f for f in added.added if f == _fingerprint(old_root)], actor="demo:admin")
    audit = Table("when", "who", "action", "added", "removed")
    for entry in reversed(store.audit_log()):
        audit.add_row(
            f"{entry.at:%H:%M:%S}",
            entry.actor,
            entry.action,
            str(len(entry.added)),
            str(len(entry.removed)),
        )
    console.print(audit)


def _fingerprint(cert: DemoCertificate) -> str:
    return cert.certificate.fingerprint(hashes.SHA256()).hex()


def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary data directory afterwards.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Run the cloud and the connector on loopback (demo-data/); Ctrl-C stops."
        ),
    ] = False,
) -> None:
    """A guided tour of the trust store on a temporary data directory."""
    if full:  # the two-role demo (make demo) lives in hybridge.connector.demo_run
        from hybridge.connector.demo_run import run_full_demo

        run_full_demo(Path("demo-data"))
        return
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="hybridge-demo-"))
    console.print(
        Panel.fit(
            "Hybridge demo: the connector's CA trust store\n"
            f"data directory: {work / 'connector'} (temporary)",
            title="hybridge demo",
        )
    )
    try:
        with open_trust_store(work / "connector") as store:
            _tour(console, store, work)
    finally:
        if keep:
            console.print(
                f"\nkept {work}; try: hybridge trust list --data-dir {work / 'connector'}"
            )
        else:
            shutil.rmtree(work, ignore_errors=True)
    console.print("\nNext: 'hybridge trust --help' for every trust store command.")
