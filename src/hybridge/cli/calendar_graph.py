"""``hybridge connector calendar graph``: Exchange Online (Microsoft Graph) configurations.

    hybridge connector calendar graph set --name N --tenant-id GUID --client-id GUID \\
        --test-mailbox room@example.com [--secret-stdin] [--authority-host URL] \\
        [--graph-url URL] [--save-anyway]
    hybridge connector calendar graph show ID | graph list | graph test ID | graph delete ID

Exit statuses: 0 saved / test passed; 1 the connection test failed (and, for ``set``,
nothing was saved); 2 bad input. The client secret is read from standard input or a
hidden prompt, never from an argument (argv is visible to every local user); nothing
prints it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hybridge.cli.common import EXIT_PROBLEMS, DataDirOption, JsonOption, fail, print_json

if TYPE_CHECKING:
    from hybridge.connector.exchange_graph import GraphConfigService

graph_app = typer.Typer(
    help="Exchange Online configurations (Microsoft Graph, app-only; secrets never shown).",
    no_args_is_help=True,
)
_FIELDS = ("display_name", "tenant_id", "client_id", "test_mailbox", "authority_host", "graph_url")


def _open(data_dir: Path | None) -> GraphConfigService:
    from hybridge.cli.calendar import _open as open_exchange

    return open_exchange(data_dir).graph


def _actor() -> str:
    from hybridge.cli.calendar import _actor as actor

    return actor()


def _read_secret() -> Any:
    from hybridge.vault import Secret

    line = sys.stdin.readline().rstrip("\r\n") if not sys.stdin.isatty() else ""
    if not line and sys.stdin.isatty():
        line = str(typer.prompt("Client secret", hide_input=True))
    if not line:
        fail("no client secret on standard input")
    return Secret.from_text(line)


def _print_check(result: Any) -> None:
    typer.echo(f"connection test: {result.code}")
    typer.echo(result.message)
    if result.fix:
        typer.echo("fix:")
        typer.echo(result.fix)


def _fail_on(exc: Exception) -> None:
    from hybridge.core.errors import HybridgeError

    if isinstance(exc, HybridgeError):
        fail(str(exc))
    raise exc


@graph_app.command("set")
def graph_set(
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    config_id: Annotated[
        str | None, typer.Option("--id", help="Replace this configuration (default: create).")
    ] = None,
    tenant_id: Annotated[
        str | None, typer.Option("--tenant-id", help="Directory (tenant) ID.")
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Application (client) ID.")
    ] = None,
    test_mailbox: Annotated[str | None, typer.Option("--test-mailbox")] = None,
    authority_host: Annotated[
        str | None,
        typer.Option("--authority-host", help="Default https://login.microsoftonline.com."),
    ] = None,
    graph_url: Annotated[
        str | None, typer.Option("--graph-url", help="Default https://graph.microsoft.com/v1.0.")
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the client secret from standard input.")
    ] = False,
    save_anyway: Annotated[
        bool, typer.Option("--save-anyway", help="Save even if the connection test fails.")
    ] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create or replace an Exchange Online configuration; it is tested before it is saved."""
    from hybridge.connector.exchange_graph_config import GraphConfig

    service = _open(data_dir)
    fields: dict[str, Any] = {}
    try:
        if config_id is not None:
            view = service.get(config_id).public_view()
            fields = {k: view[k] for k in _FIELDS}
        given = {
            "display_name": name,
            "tenant_id": tenant_id,
            "client_id": client_id,
            "test_mailbox": test_mailbox,
            "authority_host": authority_host,
            "graph_url": graph_url,
        }
        fields.update({k: v for k, v in given.items() if v is not None})
        config = GraphConfig.from_mapping(fields)
        secret = _read_secret() if secret_stdin else None
        outcome = service.save(
            config,
            actor=_actor(),
            config_id=config_id,
            client_secret=secret,
            save_anyway=save_anyway,
        )
    except Exception as exc:
        _fail_on(exc)
        raise
    if json_output:
        print_json(outcome.view())
    else:
        if outcome.test is not None:
            _print_check(outcome.test)
        if outcome.saved and outcome.record is not None:
            forced = " despite the failed test" if outcome.forced else ""
            typer.echo(f"saved {outcome.record.id} ({outcome.record.config.display_name}){forced}")
        else:
            typer.echo("not saved: the connection test failed (use --save-anyway to insist)")
    if not outcome.saved:
        raise typer.Exit(EXIT_PROBLEMS)


@graph_app.command("show")
def graph_show(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one configuration (the secret: when and by whom it was set, never its value)."""
    try:
        view = _open(data_dir).get(config_id).public_view()
    except Exception as exc:
        _fail_on(exc)
        raise
    if json_output:
        print_json(view)
        return
    for key, value in view.items():
        typer.echo(f"{key}: {value}")


@graph_app.command("list")
def graph_list(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List the Exchange Online configurations."""
    views = [r.public_view() for r in _open(data_dir).configs()]
    if json_output:
        print_json({"configs": views})
        return
    for v in views:
        s = v["client_secret"]
        state = f"secret set {s['set_at']} by {s['set_by']}" if s["set"] else "no client secret"
        typer.echo(f"{v['id']}  {v['display_name']}  tenant {v['tenant_id']}  {state}")


@graph_app.command("test")
def graph_test(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Test a stored configuration: sign in, read the test mailbox's calendar."""
    from hybridge.connector.exchange_graph import check_view

    try:
        result = _open(data_dir).test(config_id, actor=_actor())
    except Exception as exc:
        _fail_on(exc)
        raise
    if json_output:
        print_json(check_view(result))
    else:
        _print_check(result)
    if not result.ok:
        raise typer.Exit(EXIT_PROBLEMS)


@graph_app.command("delete")
def graph_delete(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Delete a configuration and its client secret."""
    try:
        _open(data_dir).delete(config_id, actor=_actor())
    except Exception as exc:
        _fail_on(exc)
        raise
    typer.echo(f"deleted {config_id}")
