"""``hybridge connector calendar graph``: Exchange Online (Microsoft Graph) configurations.

    hybridge connector calendar graph set --name N --tenant-id GUID --client-id GUID \\
        --test-mailbox room@example.com [--secret-stdin] [--authority-host URL] \\
        [--graph-url URL] [--save-anyway]
    hybridge connector calendar graph show ID | graph list | graph test ID | graph delete ID
    hybridge connector calendar graph link --id ID [--base-url https://connector:9443]

Exit statuses: 0 saved / test passed; 1 the connection test failed (and, for ``set``,
nothing was saved); 2 bad input. The client secret is read from standard input or a
hidden prompt, never from an argument (argv is visible to every local user); nothing
prints it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from hybridge.cli._calendar_common import (
    DEFAULT_BASE_URL,
    fail_on,
    read_secret,
    report_link,
    report_save,
    report_test,
    show_view,
)
from hybridge.cli._calendar_common import actor as _actor
from hybridge.cli._calendar_common import open_graph as _open
from hybridge.cli.common import DatabaseUrlOption, DataDirOption, JsonOption, print_json

if TYPE_CHECKING:
    from hybridge.vault import Secret

graph_app = typer.Typer(
    help="Exchange Online configurations (Microsoft Graph, app-only; secrets never shown).",
    no_args_is_help=True,
)
_FIELDS = ("display_name", "tenant_id", "client_id", "test_mailbox", "authority_host", "graph_url")


def _read_secret() -> Secret:
    return read_secret("Client secret", "no client secret on standard input")


_FIX_HEADING = "fix:"


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
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create or replace an Exchange Online configuration; it is tested before it is saved."""
    from hybridge.connector.exchange_graph_config import GraphConfig

    service = _open(data_dir, database_url=database_url)
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
        fail_on(exc)
    report_save(outcome, json_output=json_output, fix_heading=_FIX_HEADING)


@graph_app.command("show")
def graph_show(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one configuration (the secret: when and by whom it was set, never its value)."""
    try:
        view = _open(data_dir, database_url=database_url).get(config_id).public_view()
    except Exception as exc:
        fail_on(exc)
    show_view(view, json_output=json_output)


@graph_app.command("list")
def graph_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the Exchange Online configurations."""
    views = [r.public_view() for r in _open(data_dir, database_url=database_url).configs()]
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
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Test a stored configuration: sign in, read the test mailbox's calendar."""
    from hybridge.connector.exchange_graph import check_view

    try:
        result = _open(data_dir, database_url=database_url).test(config_id, actor=_actor())
    except Exception as exc:
        fail_on(exc)
    report_test(result, check_view(result), json_output=json_output, fix_heading=_FIX_HEADING)


@graph_app.command("link")
def graph_link(
    config_id: Annotated[str, typer.Option("--id", help="The configuration id.")],
    base_url: Annotated[
        str,
        typer.Option("--base-url", help="The connector's URL as the admin reaches it."),
    ] = DEFAULT_BASE_URL,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a one-time credential-entry link (24 h, single use) for the client secret."""
    try:
        issued = _open(data_dir, base_url, database_url=database_url).create_link(
            config_id, actor=_actor()
        )
    except Exception as exc:
        fail_on(exc)
    report_link(
        config_id,
        issued,
        base_url + issued.path(),
        json_output=json_output,
        admin="the Exchange Online admin",
    )


@graph_app.command("delete")
def graph_delete(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete a configuration and its client secret."""
    try:
        _open(data_dir, database_url=database_url).delete(config_id, actor=_actor())
    except Exception as exc:
        fail_on(exc)
    typer.echo(f"deleted {config_id}")
