"""``hybridge connector traversal``: the traversal client's configuration, from the command line.

Thin: ``set``/``show``/``clear`` call ``hybridge.connector.traversal_config.TraversalStore``
on the connector's database and vault; a running ``hybridge connector serve`` picks the
change up within a few seconds and re-dials. The traversal key is read from a file and goes
straight into the vault; no command prints it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.common import (
    EXIT_PROBLEMS,
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    fail,
    node_database_url,
    print_json,
    resolve_data_dir,
)
from hybridge.cli.trust import actor
from hybridge.connector.traversal_config import (
    DEFAULT_KEEPALIVE,
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.connector.traversal_errors import TraversalConfigInvalid
from hybridge.connector.traversal_listener_config import listener_from_fields
from hybridge.core.errors import HybridgeError
from hybridge.storage.db import open_database
from hybridge.vault import Secret, Vault, configured_source

traversal_app = typer.Typer(
    name="traversal",
    help="The traversal client: the connector's outbound mutual-TLS connection to the edge.",
    no_args_is_help=True,
)
_MAX_FILE = 64 * 1024


@contextlib.contextmanager
def _store(data_dir: Path | None, database_url: str | None) -> Iterator[TraversalStore]:
    directory = resolve_data_dir(data_dir)
    database = None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = open_database(node_database_url(directory, database_url), "node")
        vault = Vault.open(database, configured_source(directory), create=True, actor=actor())
        yield TraversalStore(database, vault)
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"cannot use the data directory {str(directory)!r}: {exc.strerror or exc}")
    finally:
        if database is not None:
            database.dispose()


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise TraversalConfigInvalid(
            f"cannot read the {what} file {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if len(data) > _MAX_FILE:
        raise TraversalConfigInvalid(f"the {what} file {str(path)!r} is over {_MAX_FILE} bytes")
    return data


def _print_view(view: dict[str, object]) -> None:
    certificate = view.get("certificate")
    rows = {
        "edge": view["edge"],
        "edge name": view["edge_name"],
        "premises": view["premises"],
        "premises name": view["premises_name"],
        "keep-alive": f"{view['keepalive_interval']:g} s",
        "listener": _listener_text(view.get("listener")),
        "certificate": certificate["subject"]  # type: ignore[index]
        if certificate
        else "the registration's client certificate",
        "updated": f"{view.get('updated_at', '-')} by {view.get('updated_by', '-')}",
    }
    for key, value in rows.items():
        typer.echo(f"{key:<14} {value}")


def _listener_text(listener: object) -> str:
    if not isinstance(listener, dict):
        return "none (the premises server cannot dial the connector)"
    allow = ", ".join(listener["allow"]) or "the premises server's addresses"
    client = ", client certificate required" if listener["require_client_cert"] else ""
    return f"{listener['address']} {listener['transport']} (from {allow}{client})"


@traversal_app.command("set")
def traversal_set(
    edge: Annotated[
        str, typer.Option("--edge", help="The edge's traversal listener, host:port (port 7001).")
    ],
    edge_name: Annotated[
        str, typer.Option("--edge-name", help="The name the edge's certificate must carry.")
    ],
    premises: Annotated[
        str,
        typer.Option(
            "--premises",
            help="The premises SIP server, e.g. 'sip:pbx.example.com:5061;transport=tls'.",
        ),
    ],
    premises_name: Annotated[
        str | None,
        typer.Option("--premises-name", help="TLS name of the premises server (default: host)."),
    ] = None,
    keepalive: Annotated[
        float, typer.Option("--keepalive", help="Seconds between CRLF keep-alives.")
    ] = DEFAULT_KEEPALIVE,
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert",
            help="A dedicated traversal certificate chain (PEM); default: the registration's.",
            dir_okay=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Its private key (PEM), stored in the vault.", dir_okay=False),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Accept the premises server's own connections on ip:port (e.g. 0.0.0.0:5060).",
        ),
    ] = None,
    listen_transport: Annotated[
        str | None, typer.Option("--listen-transport", help="tcp (default) or tls.")
    ] = None,
    listen_allow: Annotated[
        str | None,
        typer.Option(
            "--listen-allow",
            help="Comma-separated IPs/networks allowed to connect (default: the premises "
            "server's addresses).",
        ),
    ] = None,
    listen_require_client_cert: Annotated[
        bool,
        typer.Option(
            "--listen-require-client-cert",
            help="TLS listener: the premises server must present a certificate carrying the "
            "premises TLS name.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Configure the traversal client (replaces any earlier configuration)."""
    with _store(data_dir, database_url) as store:
        try:
            certificate = _read(cert, "certificate").decode("ascii", "replace") if cert else None
            secret = Secret(_read(key, "key")) if key else None
            config = TraversalConfig(
                edge=EdgeAddress.parse(edge),
                edge_name=edge_name,
                premises=PremisesServer.parse(premises, premises_name),
                keepalive_interval=keepalive,
                certificate_pem=certificate,
                listener=listener_from_fields(
                    listen, listen_transport, listen_allow, listen_require_client_cert
                ),
            )
            record = store.set(config, key=secret, actor=actor())
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json_output:
        print_json({"configured": True, "config": record.public_view()})
        return
    typer.echo(
        f"traversal client set: edge {config.edge} ({config.edge_name}), premises "
        f"{config.premises.uri}"
        + (
            f"; listening on {config.listener} ({config.listener.transport})"
            if config.listener
            else ""
        )
    )


@traversal_app.command("show")
def traversal_show(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the configuration (exit 1 when there is none). The key is never shown."""
    with _store(data_dir, database_url) as store:
        record = store.get()
    if json_output:
        print_json(
            {
                "configured": record is not None,
                "config": record.public_view() if record is not None else None,
            }
        )
    elif record is not None:
        _print_view(record.public_view())
    else:
        typer.echo("traversal client not configured")
    if record is None:
        raise typer.Exit(EXIT_PROBLEMS)


@traversal_app.command("clear")
def traversal_clear(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove the configuration and the traversal key (exit 1 when there was none)."""
    with _store(data_dir, database_url) as store:
        removed = store.clear(actor=actor())
    if json_output:
        print_json({"removed": removed})
    else:
        typer.echo("traversal configuration removed" if removed else "nothing to remove")
    if not removed:
        raise typer.Exit(EXIT_PROBLEMS)
