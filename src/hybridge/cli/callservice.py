"""``hybridge cloud edge ...`` and ``hybridge cloud call``: the call service's CLI.

Thin: ``edge set/list/remove`` call ``hybridge.cloud.callservice_edges``; ``call`` resolves
the organisation's edge, loads the cloud's anchors and runs
``hybridge.cloud.callservice_call.place_test_call``. Registered on ``cloud_app`` by
``register`` (one line in ``cli/cloud.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from hybridge.cli.common import (
    EXIT_PROBLEMS,
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    fail,
    print_json,
    resolve_data_dir,
)
from hybridge.cli.trust import actor
from hybridge.core.errors import HybridgeError

edge_app = typer.Typer(
    help="Each organisation's edge, as the call service trusts and calls it.",
    no_args_is_help=True,
)

OrgOption = Annotated[str, typer.Option("--org", help="Organisation name.")]


@contextlib.contextmanager
def _session(data_dir: Path | None, database_url: str | None) -> Iterator[Session]:
    from hybridge.storage.db import open_database, sqlite_url

    directory = resolve_data_dir(data_dir, "cloud")
    try:
        database = open_database(database_url or sqlite_url(directory / "cloud.db"), "cloud")
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    try:
        with database.transaction() as db:
            yield db
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        database.dispose()


@edge_app.command("set")
def edge_set(
    org: OrgOption,
    subject_name: Annotated[
        str,
        typer.Option("--subject-name", help="The name on the edge's certificate (SAN DNS)."),
    ],
    address: Annotated[
        str | None,
        typer.Option("--address", help="host:port of the edge's cloud listener (test calls)."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Set the organisation's edge: the call service admits it only under this name."""
    from hybridge.cloud.callservice_edges import set_org_edge
    from hybridge.web.clock import system_clock

    with _session(data_dir, database_url) as db:
        edge = set_org_edge(db, org, subject_name, address, actor=actor(), now=system_clock())
    if json_output:
        print_json(edge.to_dict())
        return
    typer.echo(
        f"edge of {edge.org_name}: subject name {edge.subject_name}"
        + (f", address {edge.address}" if edge.address else "")
    )


@edge_app.command("list")
def edge_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """List every organisation's edge."""
    from hybridge.cloud.callservice_edges import list_org_edges

    with _session(data_dir, database_url) as db:
        edges = list_org_edges(db)
    if json_output:
        print_json([e.to_dict() for e in edges])
        return
    if not edges:
        typer.echo("no edge configured: 'hybridge cloud edge set --org ORG --subject-name NAME'")
    for e in edges:
        typer.echo(f"{e.org_name:<30} {e.subject_name:<40} {e.address or '-'}")


@edge_app.command("remove")
def edge_remove(
    org: OrgOption,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove the organisation's edge (its connections are refused from then on)."""
    from hybridge.cloud.callservice_edges import remove_org_edge
    from hybridge.web.clock import system_clock

    with _session(data_dir, database_url) as db:
        edge = remove_org_edge(db, org, actor=actor(), now=system_clock())
    if json_output:
        print_json({"removed": edge.to_dict()})
        return
    typer.echo(f"removed the edge of {edge.org_name}")


def call(
    to: Annotated[str, typer.Option("--to", help="Request-URI, e.g. sip:alice@premises.example")],
    cert: Annotated[
        Path,
        typer.Option(
            "--callservice-cert",
            help="The call service's chain (PEM).",
            exists=True,
            dir_okay=False,
        ),
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--callservice-key", help="Its private key (PEM).", exists=True, dir_okay=False
        ),
    ],
    org: Annotated[
        str | None,
        typer.Option("--org", help="Organisation whose edge to call (default: found by --edge)."),
    ] = None,
    edge_address: Annotated[
        str | None,
        typer.Option("--edge", help="host:port of the edge (default: the organisation's)."),
    ] = None,
    from_uri: Annotated[str | None, typer.Option("--from", help="From URI.")] = None,
    via_host: Annotated[
        str | None,
        typer.Option(
            "--via-host",
            help="The call service's host name in Via/Contact (default: its certificate's).",
        ),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option(
            "--trust",
            help="CA file the edge must chain to (default: the published CA list).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds for the INVITE's final response.")
    ] = 15.0,
    hold: Annotated[float, typer.Option("--hold", help="Seconds between ACK and BYE.")] = 0.0,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Place a test call to an organisation's edge and report every response with timing.

    Exit 0 when the INVITE got 200 OK and the BYE got 200 OK; 1 when the call failed (the
    reason is printed); 2 for bad input (unknown organisation or edge, unusable files).
    """
    from cryptography import x509

    from hybridge.cloud import calist
    from hybridge.cloud.callservice_call import place_test_call
    from hybridge.cloud.callservice_edges import EdgeAddress, org_edge_at, org_edge_of

    if org is None and edge_address is None:
        fail("give --org ORG or --edge HOST:PORT (or both)")
    try:
        with _session(data_dir, database_url) as db:
            edge = org_edge_of(db, org) if org is not None else org_edge_at(db, edge_address or "")
            if trust is None:
                anchors = [
                    x509.load_der_x509_certificate(ca.der) for ca in calist.current_certificates(db)
                ]
        if trust is not None:
            anchors = x509.load_pem_x509_certificates(trust.read_bytes())
        address = EdgeAddress.parse(edge_address) if edge_address else None
        via_host = via_host or _certificate_name(cert)
        report = asyncio.run(
            place_test_call(
                edge, to_uri=to, anchors=anchors, cert_file=cert, key_file=key, address=address,
                from_uri=from_uri, via_host=via_host, invite_timeout=timeout, hold=hold,
            )
        )  # fmt: skip
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    except (OSError, ValueError) as exc:
        fail(f"cannot place the test call: {exc}")
    if json_output:
        print_json(report.to_dict())
    else:
        identity = f" ({report.edge_identity})" if report.edge_identity else ""
        typer.echo(f"test call to {report.to_uri} via {report.organisation}'s edge "
                   f"{report.edge}{identity}")  # fmt: skip
        for step in report.steps:
            arrow = "->" if step.direction == "sent" else "<-"
            typer.echo(f"  {step.at_ms:>8.1f} ms  {arrow} {step.summary}")
        typer.echo(("OK: " if report.ok else "FAILED: ") + report.reason)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def _certificate_name(path: Path) -> str:
    """The first SAN DNS name of the leaf in ``path`` (``callservice.example.com``)."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "callservice.invalid"
    dns = names.get_values_for_type(x509.DNSName)
    return dns[0] if dns else "callservice.invalid"


def register(cloud_app: typer.Typer) -> None:
    """Add ``edge`` and ``call`` to ``hybridge cloud``."""
    cloud_app.add_typer(edge_app, name="edge")
    cloud_app.command("call")(call)
