"""``hybridge cloud``: run the cloud and manage its organisations and admins."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    ServerCertOption,
    ServerKeyOption,
    configure_logging,
    fail,
    print_json,
    read_password,
    resolve_data_dir,
    uvicorn_loop,
)

cloud_app = typer.Typer(
    help="The cloud: portal, registration authority, CA list.", no_args_is_help=True
)
admin_app = typer.Typer(help="Organisations' admins of the cloud portal.", no_args_is_help=True)
cloud_app.add_typer(admin_app, name="admin")


@admin_app.command("create")
def admin_create(
    org: Annotated[str, typer.Option("--org", help="Organisation name (created if new).")],
    email: Annotated[str, typer.Option("--email", help="The admin's e-mail, used as login.")],
    operator: Annotated[
        bool, typer.Option("--operator", help="May change the CA list every organisation gets.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an admin of an organisation (the first one too). The password is prompted for."""
    from hybridge.cloud.orgs import create_org_admin
    from hybridge.storage.db import open_database, sqlite_url
    from hybridge.web.clock import system_clock

    directory = resolve_data_dir(data_dir, "cloud")
    directory.mkdir(parents=True, exist_ok=True)
    password = read_password(password_stdin)
    database = open_database(database_url or sqlite_url(directory / "cloud.db"), "cloud")
    try:
        with database.transaction() as db:
            organisation, account = create_org_admin(
                db, org, email, password, system_clock(), operator=operator
            )
    finally:
        database.dispose()
    result = {
        "organisation": organisation.name,
        "organisation_id": organisation.id,
        "login": account.login,
        "admin_id": account.id,
        "operator": operator,
    }
    if json_output:
        print_json(result)
    else:
        typer.echo(
            f"admin {account.login} created in organisation {organisation.name}"
            + (" (cloud operator)" if operator else "")
        )


@cloud_app.command("serve")
def serve(
    cert: ServerCertOption,
    key: ServerKeyOption,
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8443,
    database_url: DatabaseUrlOption = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Public URL (default https://HOST:PORT).")
    ] = None,
    connector_ca: Annotated[
        Path | None,
        typer.Option(
            "--connector-ca", help="Connector CA certificate (default: generated in the data dir)."
        ),
    ] = None,
    connector_ca_key: Annotated[Path | None, typer.Option("--connector-ca-key")] = None,
    list_signing_key: Annotated[
        Path | None,
        typer.Option(
            "--list-signing-key", help="Ed25519 key signing CA lists (default: generated)."
        ),
    ] = None,
    callservice_cert: Annotated[
        Path | None,
        typer.Option(
            "--callservice-cert",
            help="The call-service certificate chain (PEM): its root joins the default list.",
        ),
    ] = None,
    ca_roots: Annotated[
        Path | None,
        typer.Option(
            "--ca-roots",
            help="Roots published as version 1 on first start (default: the roots of --cert "
            "and --callservice-cert, found among certifi's roots).",
        ),
    ] = None,
    sip_port: Annotated[
        int | None,
        typer.Option(
            "--sip-port",
            help="Run the call service's SIP-over-TLS peer on HOST:PORT (5062; 0: any free); "
            "needs --callservice-cert and --callservice-key.",
        ),
    ] = None,
    callservice_key: Annotated[
        Path | None, typer.Option("--callservice-key", help="The call-service private key.")
    ] = None,
    sip_trust: Annotated[
        Path | None,
        typer.Option("--sip-trust", help="CAs edges must chain to (default: the CA list)."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            envvar="HYBRIDGE_CONTROL_REDIS_URL",
            help="Redis for control-channel notices between cloud processes sharing one "
            "database (redis://HOST:PORT/DB); unset: this process alone.",
            show_envvar=True,
        ),
    ] = None,
    heartbeat_interval: Annotated[
        int,
        typer.Option(
            "--heartbeat-interval",
            envvar="HYBRIDGE_CONTROL_HEARTBEAT",
            help="Seconds between connector heartbeats on the control channel (1..3600); a "
            "connector silent for 3 intervals + 10 s is closed.",
            show_envvar=True,
        ),
    ] = 30,
    control_poll: Annotated[
        float,
        typer.Option(
            "--control-poll",
            envvar="HYBRIDGE_CONTROL_POLL",
            help="Seconds between database checks for CA-list changes and revoked connectors "
            "(0.05..3600; notices make pushes immediate, the poll catches missed ones).",
            show_envvar=True,
        ),
    ] = 5.0,
) -> None:
    """Serve the cloud over HTTPS (portal, registration authority, CA list)."""
    import uvicorn

    from hybridge.cloud.app import create_app
    from hybridge.cloud.control_settings import ControlSettings
    from hybridge.cloud.mtls import PeerCertH11Protocol
    from hybridge.cloud.settings import CloudSettings
    from hybridge.core.control import MAX_CONNECTOR_FRAME

    if (connector_ca is None) != (connector_ca_key is None):
        fail("--connector-ca and --connector-ca-key go together")
    directory = resolve_data_dir(data_dir, "cloud")
    wildcard = host in ("0.0.0.0", "::")  # noqa: S104 - comparing, not binding
    public = base_url or f"https://{'localhost' if wildcard else host}:{port}"
    callservice = None
    if sip_port is not None:
        from hybridge.cloud.callservice_settings import CallServiceSettings

        if callservice_cert is None or callservice_key is None:
            fail("--sip-port needs --callservice-cert and --callservice-key")
        try:
            callservice = CallServiceSettings(
                callservice_cert, callservice_key, host=host, port=sip_port, trust_file=sip_trust
            )
        except ValueError as exc:
            fail(str(exc))
    try:
        settings = CloudSettings(
            data_dir=directory,
            base_url=public,
            server_cert=cert,
            callservice_cert=callservice_cert,
            connector_ca_cert=connector_ca,
            connector_ca_key=connector_ca_key,
            list_signing_key=list_signing_key,
            ca_roots=ca_roots,
            database_url=database_url,
            callservice=callservice,
        )
    except ValueError as exc:
        fail(str(exc))
    try:
        control = ControlSettings(
            redis_url=redis_url or None,
            heartbeat_interval=heartbeat_interval,
            poll_interval=control_poll,
        )
    except ValueError as exc:
        fail(str(exc))
    configure_logging(logging.INFO)
    app = create_app(settings)
    app.state.control.reconfigure(control)
    typer.echo(f"hybridge cloud serving {public}", err=True)
    # Browsers reach the portal without a client certificate; connectors present theirs for
    # /api (mutual TLS, checked against the connector CA here and again in the route).
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ca_certs=str(connector_ca or directory / "connector-ca.pem"),
        http=PeerCertH11Protocol,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="info",
        proxy_headers=False,
        server_header=False,
        # One control WebSocket per connector: uvloop does its TLS in C (a fraction of the
        # stdlib loop's memory per connection); no permessage-deflate (a zlib context per
        # connection for small JSON frames); no server pings (the channel's heartbeats and
        # the hub's liveness sweep find dead peers); frames no larger than ours.
        loop=uvicorn_loop(),
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_max_size=MAX_CONNECTOR_FRAME,
    )


def _register_callservice() -> None:
    from hybridge.cli.callservice import register

    register(cloud_app)


_register_callservice()
