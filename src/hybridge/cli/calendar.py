"""``hybridge connector calendar``: Exchange configurations, credential links, connection test.

    hybridge connector calendar config set --name N --ews-url URL --username 'DOM\\u' \\
        --test-mailbox room@example.com [--password-stdin] [--save-anyway]
    hybridge connector calendar config show ID | config list
    hybridge connector calendar link create ID [--base-url https://connector:9443]
    hybridge connector calendar test ID
    hybridge connector calendar graph set|show|list|test|link|delete   (Exchange Online, Graph)

Exit statuses: 0 saved / test passed; 1 the connection test failed (and, for ``config set``,
nothing was saved); 2 bad input. The password is read from standard input or a hidden
prompt, never from an argument (argv is visible to every local user); nothing prints it.
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
from hybridge.cli._calendar_common import open_exchange as _open
from hybridge.cli.calendar_graph import graph_app
from hybridge.cli.common import DatabaseUrlOption, DataDirOption, JsonOption, print_json

if TYPE_CHECKING:
    from hybridge.vault import Secret

calendar_app = typer.Typer(
    name="calendar",
    help="The calendar connector's Exchange configurations (passwords are never shown).",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Exchange configurations.", no_args_is_help=True)
link_app = typer.Typer(help="One-time credential-entry links.", no_args_is_help=True)
calendar_app.add_typer(config_app, name="config")
calendar_app.add_typer(link_app, name="link")
calendar_app.add_typer(graph_app, name="graph")

_CONFIG_FIELDS = (
    "display_name",
    "ews_url",
    "autodiscover_email",
    "redirect_hosts",
    "username",
    "auth",
    "test_mailbox",
)


def _read_password() -> Secret:
    return read_secret("Impersonation password", "no password on standard input")


_FIX_HEADING = "fix (Exchange Management Shell):"


@config_app.command("set")
def config_set(
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    config_id: Annotated[
        str | None, typer.Option("--id", help="Replace this configuration (default: create).")
    ] = None,
    ews_url: Annotated[
        str | None, typer.Option("--ews-url", help="https://.../EWS/Exchange.asmx")
    ] = None,
    autodiscover_email: Annotated[
        str | None, typer.Option("--autodiscover-email", help="Find EWS by Autodiscover instead.")
    ] = None,
    redirect_host: Annotated[
        list[str] | None,
        typer.Option("--redirect-host", help="A host Autodiscover may redirect to (repeat)."),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="Impersonation account: DOMAIN\\user or UPN.")
    ] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="NTLM or Basic.")] = None,
    test_mailbox: Annotated[str | None, typer.Option("--test-mailbox")] = None,
    verify_tls: Annotated[
        bool | None,
        typer.Option(
            "--verify-tls/--no-verify-tls",
            help="Verify Exchange's certificate against the platform trust store (default on).",
        ),
    ] = None,
    confirm_insecure: Annotated[
        bool,
        typer.Option("--confirm-insecure", help="Confirm turning certificate verification off."),
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    save_anyway: Annotated[
        bool, typer.Option("--save-anyway", help="Save even if the connection test fails.")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create or replace an Exchange configuration; it is tested before it is saved."""
    from hybridge.connector.exchange_config import ExchangeConfig

    service = _open(data_dir, database_url=database_url)
    fields: dict[str, Any] = {}
    try:
        if config_id is not None:
            view = service.get(config_id).public_view()
            fields = {k: view[k] for k in _CONFIG_FIELDS}
            fields["verify_tls"] = view["tls"]["verify"]
        given = {
            "display_name": name,
            "username": username,
            "auth": auth,
            "test_mailbox": test_mailbox,
            "verify_tls": verify_tls,
            "redirect_hosts": redirect_host or None,
        }
        fields.update({k: v for k, v in given.items() if v is not None})
        if ews_url is not None or autodiscover_email is not None:
            fields["ews_url"], fields["autodiscover_email"] = ews_url, autodiscover_email
        config = ExchangeConfig.from_mapping(fields)
        password = _read_password() if password_stdin else None
        outcome = service.save(
            config,
            actor=_actor(),
            config_id=config_id,
            password=password,
            save_anyway=save_anyway,
            confirm_insecure=confirm_insecure,
        )
    except Exception as exc:
        fail_on(exc)
    report_save(outcome, json_output=json_output, fix_heading=_FIX_HEADING)


@config_app.command("show")
def config_show(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one configuration (the password: when and by whom it was set, never its value)."""
    service = _open(data_dir, database_url=database_url)
    try:
        view = service.get(config_id).public_view()
    except Exception as exc:
        fail_on(exc)
    show_view(view, json_output=json_output)


@config_app.command("list")
def config_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the Exchange configurations."""
    views = [r.public_view() for r in _open(data_dir, database_url=database_url).configs()]
    if json_output:
        print_json({"configs": views})
        return
    for v in views:
        pw = v["password"]
        state = f"password set {pw['set_at']} by {pw['set_by']}" if pw["set"] else "no password"
        tls = "" if v["tls"]["verify"] else " TLS VERIFICATION OFF"
        typer.echo(f"{v['id']}  {v['display_name']}  {v['username']}  {state}{tls}")


@link_app.command("create")
def link_create(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    base_url: Annotated[
        str,
        typer.Option("--base-url", help="The connector's URL as the Exchange admin reaches it."),
    ] = DEFAULT_BASE_URL,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a one-time credential-entry link (24 h, single use) for the Exchange admin."""
    service = _open(data_dir, base_url, database_url=database_url)
    try:
        issued = service.create_link(config_id, actor=_actor())
    except Exception as exc:
        fail_on(exc)
    report_link(
        config_id,
        issued,
        base_url + issued.path(),
        json_output=json_output,
        admin="the Exchange admin",
    )


@calendar_app.command("test")
def calendar_test(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Test a stored configuration: EWS over TLS, impersonating the test mailbox."""
    from hybridge.connector.exchange import test_view

    service = _open(data_dir, database_url=database_url)
    try:
        result = service.test(config_id, actor=_actor())
    except Exception as exc:
        fail_on(exc)
    report_test(result, test_view(result), json_output=json_output, fix_heading=_FIX_HEADING)
