"""``hybridge trust``: the connector's CA trust store from the command line.

Thin on purpose: each command opens the store of ``--data-dir`` (and ``--database-url``:
the node database of a connector or an edge on PostgreSQL), calls one ``TrustStore``
method and prints its result as text (Rich) or ``--json``. Errors are one sentence on stderr
with exit status 2; ``check`` exits 1 when it finds problems.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridge.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    fail,
    print_json,
    resolve_data_dir,
)
from hybridge.core.errors import HybridgeError
from hybridge.core.pki import MAX_INPUT_BYTES, to_pem
from hybridge.truststore import AnchorReport, CertificatesRejected, TrustStore, open_trust_store
from hybridge.truststore.bundle import write_atomically
from hybridge.truststore.checks import NOT_A_CA

trust_app = typer.Typer(
    name="trust",
    help="The CA trust store: manual and cloud anchors (the bootstrap set is never shown).",
    no_args_is_help=True,
)

STATUS_STYLE = {
    "valid": "green",
    "not_a_ca": "yellow",
    "not_yet_valid": "yellow",
    "expired": "red",
    "weak": "red",
    "invalid": "bold red",
}


def iso_utc(value: datetime) -> str:
    """``2025-05-12T23:59:00Z``: ISO 8601 in UTC with a ``Z``, as every JSON output uses."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    """Who the audit log records for a CLI change: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers): still say it was the CLI
        return "cli:unknown"


@contextmanager
def opened(data_dir: Path | None, database_url: str | None = None) -> Iterator[TrustStore]:
    """The trust store of ``--data-dir`` (its database: ``--database-url`` when given); a
    ``HybridgeError`` becomes one line and status 2."""
    try:
        with open_trust_store(resolve_data_dir(data_dir), database_url=database_url) as store:
            yield store
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)


def anchor_json(report: AnchorReport) -> dict[str, Any]:
    """The JSON object of one anchor (``trust list --json``, ``trust show --json``)."""
    info, assessment, anchor = report.info, report.assessment, report.anchor
    return {
        "fingerprint_sha256": anchor.fingerprint_sha256,
        "subject": info.subject,
        "issuer": info.issuer,
        "serial": info.serial,
        "not_before": iso_utc(info.not_before),
        "not_after": iso_utc(info.not_after),
        "source": anchor.source.value,
        "status": assessment.status.value,
        "key": info.key,
        "added_at": iso_utc(anchor.added_at),
        "added_by": anchor.added_by,
        "cloud_sequence": anchor.cloud_sequence,
        "problems": list(assessment.problems),
        "warnings": list(assessment.warnings),
        "expires_in_days": assessment.expires_in_days,
        "expiring_soon": report.expiring_soon,
    }


def _console() -> Console:
    # Wide enough for a full RFC 4514 subject when piped; Rich folds it on a terminal.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _status_text(report: AnchorReport) -> str:
    status = report.assessment.status.value
    text = f"[{STATUS_STYLE.get(status, 'default')}]{status}[/]"
    if report.expiring_soon:
        text += f" [yellow]({report.assessment.expires_in_days} d left)[/]"
    return text


def _validity(report: AnchorReport) -> str:
    return f"{report.info.not_before:%Y-%m-%d} → {report.info.not_after:%Y-%m-%d}"


def anchors_table(reports: Sequence[AnchorReport], *, title: str = "Trust anchors") -> Table:
    """The Rich table of ``trust list`` (also used by ``hybridge demo``)."""
    table = Table(title=title, title_justify="left")
    table.add_column("SHA-256", no_wrap=True)
    # Ratios let Rich shrink every column to fit 80 columns; subjects get the most room.
    table.add_column("Subject", overflow="fold", ratio=3)
    table.add_column("Source", no_wrap=True)
    table.add_column("Status", ratio=1)
    table.add_column("Key", ratio=1)
    table.add_column("Validity", overflow="fold", ratio=1)
    for report in reports:
        table.add_row(
            report.anchor.fingerprint_sha256[:12],
            report.info.subject,
            report.anchor.source.value,
            _status_text(report),
            report.info.key,
            _validity(report),
        )
    return table


def show_lines(report: AnchorReport) -> list[tuple[str, str]]:
    """``(label, value)`` rows of ``trust show`` (also used by ``hybridge demo``)."""
    info, assessment, anchor = report.info, report.assessment, report.anchor
    rows = [
        ("Fingerprint SHA-256", anchor.fingerprint_sha256),
        ("Fingerprint SHA-1", info.fingerprint_sha1),
        ("Subject", info.subject),
        ("Issuer", info.issuer),
        ("Serial", info.serial),
        ("Not before", iso_utc(info.not_before)),
        ("Not after", iso_utc(info.not_after)),
        ("Key", info.key),
        ("Signature", info.signature_algorithm),
        ("CA", "yes" if info.is_ca else "no"),
        ("Path length", "none" if info.path_length is None else str(info.path_length)),
        ("Key usage", ", ".join(info.key_usage) or "none"),
        ("Self-signed", "yes" if info.self_signed else "no"),
        ("Source", anchor.source.value),
        ("Added", f"{iso_utc(anchor.added_at)} by {anchor.added_by}"),
        ("Status", assessment.status.value),
    ]
    if anchor.cloud_sequence is not None:
        rows.append(("Cloud set", str(anchor.cloud_sequence)))
    rows += [("Problem", problem) for problem in assessment.problems]
    rows += [("Warning", warning) for warning in assessment.warnings]
    return rows


@trust_app.command("add")
def add(
    files: Annotated[list[Path], typer.Argument(help="PEM, DER or PKCS#7 files.")],
    allow_non_ca: Annotated[
        bool, typer.Option("--allow-non-ca", help="Also accept certificates that are not CAs.")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Add every certificate of FILES as manual anchors, all or nothing."""
    with opened(data_dir, database_url) as store:
        try:
            result = store.add_manual_files(
                files, actor=actor(), allow_non_ca=allow_non_ca, max_bytes=MAX_INPUT_BYTES
            )
        except CertificatesRejected as exc:
            message = str(exc)
            if any(r.reason == NOT_A_CA for r in exc.rejects):
                message += "; pass --allow-non-ca to add certificates that are not CAs"
            if json:
                print_json(
                    {
                        "error": message,
                        "rejected": [
                            {"file": r.source, "index": r.index, "reason": r.reason}
                            for r in exc.rejects
                        ],
                    }
                )
            fail(message)
        subjects = result.subjects
    duplicates = [
        {
            "file": d.source,
            "index": d.index,
            "fingerprint_sha256": d.fingerprint_sha256,
            "already_in": d.already_in,
        }
        for d in result.duplicates
    ]
    if json:
        added = [{"fingerprint_sha256": fp, "subject": subjects[fp]} for fp in result.added]
        print_json({"added": added, "duplicates": duplicates})
        return
    for fp in result.added:
        typer.echo(f"added {fp}  {subjects[fp]}")
    for d in result.duplicates:
        where = "earlier in this add" if d.already_in == "batch" else f"as a {d.already_in} anchor"
        typer.echo(
            f"skipped {d.fingerprint_sha256}  {d.source} certificate {d.index + 1}: "
            f"already in the store {where}"
        )
    typer.echo(f"{len(result.added)} added, {len(result.duplicates)} duplicates skipped")


@trust_app.command("list")
def list_(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """List the manual and cloud anchors with their status."""
    with opened(data_dir, database_url) as store:
        reports = store.list_anchors()
    if json:
        print_json([anchor_json(r) for r in reports])
        return
    if not reports:
        typer.echo("no anchors: add CA certificates with 'hybridge trust add FILE...'")
        return
    _console().print(anchors_table(reports))


@trust_app.command("show")
def show(
    fingerprint: Annotated[str, typer.Argument(help="SHA-256 fingerprint or a unique prefix.")],
    pem: Annotated[bool, typer.Option("--pem", help="Print the certificate as PEM.")] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Show one anchor, decoded."""
    with opened(data_dir, database_url) as store:
        try:
            report = store.find(fingerprint)
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json:
        value = anchor_json(report)
        value.update(
            fingerprint_sha1=report.info.fingerprint_sha1,
            signature_algorithm=report.info.signature_algorithm,
            is_ca=report.info.is_ca,
            path_length=report.info.path_length,
            key_usage=list(report.info.key_usage),
            self_signed=report.info.self_signed,
        )
        if pem:
            value["pem"] = to_pem(report.anchor.der)
        print_json(value)
        return
    if pem:
        typer.echo(to_pem(report.anchor.der), nl=False)
        return
    width = max(len(label) for label, _ in show_lines(report))
    for label, text in show_lines(report):
        typer.echo(f"{label:<{width}}  {text}")


@trust_app.command("remove")
def remove(
    fingerprints: Annotated[
        list[str], typer.Argument(help="SHA-256 fingerprints (or unique prefixes, 8+ digits).")
    ],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Remove manual anchors (cloud anchors are managed by the cloud)."""
    with opened(data_dir, database_url) as store:
        try:
            removed = store.remove_manual(fingerprints, actor=actor())
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json:
        print_json({"removed": list(removed)})
        return
    for fp in removed:
        typer.echo(f"removed {fp}")


@trust_app.command("export")
def export(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the bundle to FILE instead of stdout."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print the platform-wide PEM bundle (manual + cloud anchors)."""
    with opened(data_dir, database_url) as store:
        pem = store.export_pem()
        if output is None:
            sys.stdout.write(pem)
            return
        try:
            write_atomically(output, pem.encode("ascii"))
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    typer.echo(f"wrote {pem.count('-----BEGIN CERTIFICATE-----')} anchors to {output}", err=True)


@trust_app.command("check")
def check(
    warn_days: Annotated[
        int,
        typer.Option("--warn-days", min=0, help="Warn about anchors expiring within N days."),
    ] = 30,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Check every anchor; exit 1 if one is not valid or expires within --warn-days."""
    with opened(data_dir, database_url) as store:
        reports = store.list_anchors(warn_days=warn_days)
    bad = [r for r in reports if not r.ok]
    if json:
        print_json(
            {
                "ok": not bad,
                "warn_days": warn_days,
                "anchors": [anchor_json(r) for r in reports],
            }
        )
    else:
        for report in reports:
            notes = list(report.assessment.problems) + list(report.assessment.warnings)
            line = f"{report.assessment.status.value:<13} {report.anchor.fingerprint_sha256[:16]}"
            line += f"  {report.info.subject}"
            if notes:
                line += f"  ({'; '.join(notes)})"
            typer.echo(line)
        typer.echo(
            f"{len(reports)} anchors, {len(bad)} with problems or expiring within {warn_days} days"
        )
    raise typer.Exit(EXIT_PROBLEMS if bad else EXIT_OK)
