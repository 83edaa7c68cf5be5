"""``hybridge connector calendar``: Exchange configurations, credential links, connection test.

    hybridge connector calendar config set --name N --ews-url URL --username 'DOM\\u' \\
        --test-mailbox room@example.com [--password-stdin] [--save-anyway]
    hybridge connector calendar config show ID | config list
    hybridge connector calendar link create ID [--base-url https://connector:9443]
    hybridge connector calendar test ID
    hybridge connector calendar graph set|show|list|test|delete   (Exchange Online, Graph)

Exit statuses: 0 saved / test passed; 1 the connection test failed (and, for ``config set``,
nothing was saved); 2 bad input. The password is read from standard input or a hidden
prompt, never from an argument (argv is visible to every local user); nothing prints it.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hybridge.cli.calendar_graph import graph_app
from hybridge.cli.common import (
    EXIT_PROBLEMS,
    DataDirOption,
    JsonOption,
    fail,
    print_json,
    resolve_data_dir,
)

if TYPE_CHECKING:
    from hybridge.connector.exchange import ExchangeService

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

DEFAULT_BASE_URL = "https://localhost:9443"
_CONFIG_FIELDS = (
    "display_name",
    "ews_url",
    "autodiscover_email",
    "redirect_hosts",
    "username",
    "auth",
    "test_mailbox",
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


def _open(data_dir: Path | None, base_url: str = DEFAULT_BASE_URL) -> ExchangeService:
    """The service ``create_app`` wires (same database, vault and trust store as the app)."""

    from hybridge.connector.app import create_app
    from hybridge.connector.settings import ConnectorSettings

    try:
        settings = ConnectorSettings(data_dir=resolve_data_dir(data_dir), base_url=base_url)
    except ValueError as exc:
        fail(str(exc))
    service: ExchangeService = create_app(settings).state.exchange
    return service


def _read_password() -> Any:
    from hybridge.vault import Secret

    line = sys.stdin.readline().rstrip("\r\n") if not sys.stdin.isatty() else ""
    if not line and sys.stdin.isatty():
        line = str(typer.prompt("Impersonation password", hide_input=True))
    if not line:
        fail("no password on standard input")
    return Secret.from_text(line)


def _print_test(result: Any) -> None:
    typer.echo(f"connection test: {result.code}")
    typer.echo(result.message)
    if result.fix:
        typer.echo("fix (Exchange Management Shell):")
        typer.echo(result.fix)


def _fail_on(exc: Exception) -> None:
    from hybridge.core.errors import HybridgeError

    if isinstance(exc, HybridgeError):
        fail(str(exc))
    raise exc


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
    json_output: JsonOption = False,
) -> None:
    """Create or replace an Exchange configuration; it is tested before it is saved."""
    from hybridge.connector.exchange_config import ExchangeConfig

    service = _open(data_dir)
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
        _fail_on(exc)
        raise
    if json_output:
        print_json(outcome.view())
    else:
        if outcome.test is not None:
            _print_test(outcome.test)
        if outcome.saved and outcome.record is not None:
            forced = " despite the failed test" if outcome.forced else ""
            typer.echo(f"saved {outcome.record.id} ({outcome.record.config.display_name}){forced}")
        else:
            typer.echo("not saved: the connection test failed (use --save-anyway to insist)")
    if not outcome.saved:
        raise typer.Exit(EXIT_PROBLEMS)


@config_app.command("show")
def config_show(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one configuration (the password: when and by whom it was set, never its value)."""
    service = _open(data_dir)
    try:
        view = service.get(config_id).public_view()
    except Exception as exc:
        _fail_on(exc)
        raise
    if json_output:
        print_json(view)
        return
    for key, value in view.items():
        typer.echo(f"{key}: {value}")


@config_app.command("list")
def config_list(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List the Exchange configurations."""
    views = [r.public_view() for r in _open(data_dir).configs()]
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
    json_output: JsonOption = False,
) -> None:
    """Create a one-time credential-entry link (24 h, single use) for the Exchange admin."""
    service = _open(data_dir, base_url)
    try:
        issued = service.create_link(config_id, actor=_actor())
    except Exception as exc:
        _fail_on(exc)
        raise
    url = base_url + issued.path()
    if json_output:
        print_json(
            {
                "link_id": issued.link_id,
                "config_id": config_id,
                "url": url,
                "expires_at": issued.expires_at.isoformat(),
            }
        )
        return
    typer.echo(
        "send this link to the Exchange admin (works once, until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC):"
    )
    typer.echo(url)


@calendar_app.command("test")
def calendar_test(
    config_id: Annotated[str, typer.Argument(help="The configuration id.")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Test a stored configuration: EWS over TLS, impersonating the test mailbox."""
    from hybridge.connector.exchange import test_view

    service = _open(data_dir)
    try:
        result = service.test(config_id, actor=_actor())
    except Exception as exc:
        _fail_on(exc)
        raise
    if json_output:
        print_json(test_view(result))
    else:
        _print_test(result)
    if not result.ok:
        raise typer.Exit(EXIT_PROBLEMS)
