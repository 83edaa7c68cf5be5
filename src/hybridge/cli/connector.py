"""``hybridge connector``: the on-premises connector host's commands.

Each connector package adds its own sub-group here (``vault``, later ``calendar``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.calendar import calendar_app
from hybridge.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    ServerCertOption,
    ServerKeyOption,
    configure_logging,
    fail,
    node_database_url,
    print_json,
    read_password,
    resolve_data_dir,
    uvicorn_loop,
)
from hybridge.cli.traversal import traversal_app
from hybridge.cli.vault import vault_app

connector_app = typer.Typer(
    name="connector",
    help="The on-premises connector host: credential vault, calendar connector, registration.",
    no_args_is_help=True,
)
connector_app.add_typer(vault_app, name="vault")
connector_app.add_typer(calendar_app, name="calendar")
connector_app.add_typer(traversal_app, name="traversal")


# -- the connector role: serve, admins, registration (hybridge.connector) ---------------


connector_admin_app = typer.Typer(
    help="Local admins of the connector's web UI.", no_args_is_help=True
)
connector_app.add_typer(connector_admin_app, name="admin")


@connector_admin_app.command("create")
def connector_admin_create(
    login: Annotated[str, typer.Option("--login", help="The admin's login (e-mail or name).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a local admin of the connector's web UI. The password is prompted for."""
    from hybridge.core.errors import HybridgeError
    from hybridge.storage.db import open_database
    from hybridge.web.accounts import create_admin
    from hybridge.web.clock import system_clock

    directory = resolve_data_dir(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = read_password(password_stdin)
    try:
        database = open_database(node_database_url(directory, database_url), "node")
        try:
            with database.transaction() as db:
                account = create_admin(db, login, password, system_clock())
        finally:
            database.dispose()
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    if json_output:
        print_json({"login": account.login, "admin_id": account.id})
    else:
        typer.echo(f"connector admin {account.login} created")


@connector_app.command("serve")
def connector_serve(
    cert: ServerCertOption,
    key: ServerKeyOption,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 9443,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="URL the admin's browser uses (default https://HOST:PORT)."
        ),
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", help="DNS name registered with the cloud (default: URL host)."),
    ] = None,
    bootstrap: Annotated[
        Path | None,
        typer.Option(
            "--bootstrap-ca-file",
            help="Bootstrap anchors for registration (default: $HYBRIDGE_BOOTSTRAP_CA_FILE or "
            "the packaged public roots).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    backoff_base: Annotated[
        float,
        typer.Option(
            "--reconnect-base",
            envvar="HYBRIDGE_CONTROL_BACKOFF_BASE",
            help="Control channel: the first reconnect waits up to this many seconds; each "
            "failure doubles the ceiling (random wait below it, so a fleet spreads out).",
            show_envvar=True,
        ),
    ] = 1.0,
    backoff_cap: Annotated[
        float,
        typer.Option(
            "--reconnect-cap",
            envvar="HYBRIDGE_CONTROL_BACKOFF_CAP",
            help="Control channel: the largest reconnect ceiling in seconds.",
            show_envvar=True,
        ),
    ] = 60.0,
    alarm_after: Annotated[
        float,
        typer.Option(
            "--offline-alarm-after",
            envvar="HYBRIDGE_CONTROL_ALARM_AFTER",
            help="Control channel: raise the 'cloud unreachable' alarm after this many seconds "
            "without the cloud (the last good CA list stays installed meanwhile).",
            show_envvar=True,
        ),
    ] = 300.0,
) -> None:
    """Serve the connector's admin UI and JSON API over HTTPS."""
    import logging

    import uvicorn

    from hybridge.connector.app import create_app
    from hybridge.connector.control_link import ChannelSettings
    from hybridge.connector.settings import ConnectorSettings
    from hybridge.core.control import Backoff
    from hybridge.core.errors import HybridgeError

    directory = resolve_data_dir(data_dir)
    try:
        channel = ChannelSettings(
            backoff=Backoff(backoff_base, backoff_cap), alarm_after=alarm_after
        )
    except ValueError as exc:
        fail(str(exc))
    wildcard = host in ("0.0.0.0", "::")  # noqa: S104 - comparing, not binding
    public = base_url or f"https://{'localhost' if wildcard else host}:{port}"
    try:
        settings = ConnectorSettings(
            data_dir=directory,
            base_url=public,
            hostname=hostname,
            bootstrap_file=bootstrap,
            database_url=database_url or None,
        )
    except ValueError as exc:
        fail(str(exc))
    configure_logging(logging.INFO)
    try:
        app = create_app(settings)
    except HybridgeError as exc:  # the database, the trust store or the vault is unusable
        fail(str(exc), exc.exit_code)
    app.state.control.reconfigure(channel)
    typer.echo(f"hybridge connector serving {public}", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="info",
        proxy_headers=False,
        server_header=False,
        loop=uvicorn_loop(),
    )


def _registration_service(  # type: ignore[no-untyped-def]
    data_dir: Path | None, bootstrap: Path | None, database_url: str | None
):
    from hybridge.connector.app import create_app
    from hybridge.connector.settings import ConnectorSettings
    from hybridge.core.errors import HybridgeError

    directory = resolve_data_dir(data_dir)
    # The base URL only matters for a new registration (the redirect); not used here.
    settings = ConnectorSettings(
        data_dir=directory,
        base_url="https://localhost:9443",
        bootstrap_file=bootstrap,
        database_url=database_url or None,
    )
    try:
        return create_app(settings).state.connector
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)


@connector_app.command("status")
def connector_status(
    check: Annotated[
        bool, typer.Option("--check", help="Also connect to the cloud (platform trust store).")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the connector's registration (and, with --check, whether the cloud verifies)."""
    services = _registration_service(data_dir, None, database_url)
    registration = services.registration.current()
    result: dict[str, object] = {"registered": registration is not None}
    if registration is not None:
        result.update(registration.public_view())
        if check:
            health = services.registration.cloud_health()
            result["cloud_connection"] = {
                "ok": health.ok,
                "detail": health.detail,
                "needed_ca": None if health.ok else health.needed_ca,
            }
    if json_output:
        print_json(result)
        return
    if registration is None:
        typer.echo("not registered")
        return
    typer.echo(
        f"registered to {registration.organisation_name} at {registration.cloud_url} "
        f"as {registration.connector_id} (CA certificates: {registration.trust_mode})"
    )
    if check:
        typer.echo(f"cloud connection: {result['cloud_connection']}")


@connector_app.command("deregister")
def connector_deregister(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Tell the cloud this connector leaves; remove its credential and the cloud anchors."""
    import getpass

    services = _registration_service(data_dir, None, database_url)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    result = services.registration.deregister(actor=f"cli:{user}")
    if json_output:
        print_json(
            {
                "connector_id": result.connector_id,
                "cloud_told": result.cloud_told,
                "cloud_error": result.cloud_error,
                "anchors_removed": list(result.anchors_removed),
            }
        )
        return
    typer.echo(
        f"deregistered {result.connector_id}: credential and "
        f"{len(result.anchors_removed)} cloud anchors removed"
    )
    if not result.cloud_told:
        typer.echo(f"warning: the cloud was not told: {result.cloud_error}", err=True)
