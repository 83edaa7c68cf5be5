"""``hybridge edge``: the edge's zones and its SIP server.

Thin: ``zone add/list/show/remove`` call ``hybridge.edge.service.ZoneStore``; ``serve``
reads the zones and the edge's trust store (``hybridge trust --data-dir <edge dir>``,
platform anchors only) and runs ``hybridge.edge.server.EdgeServer`` until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    configure_logging,
    fail,
    install_uvloop,
    print_json,
    resolve_data_dir,
)
from hybridge.cli.trust import actor
from hybridge.core.errors import HybridgeError
from hybridge.core.tlsverify import CnRule
from hybridge.edge.errors import EdgeSetupError
from hybridge.edge.service import ZoneStore, open_zone_store
from hybridge.edge.zones import (
    DEFAULT_CLOUD_PORT,
    DEFAULT_TRAVERSAL_PORT,
    PRESETS,
    PeerAddress,
    Zone,
    ZoneKind,
    subject_name_from,
)

edge_app = typer.Typer(
    name="edge",
    help="The edge: SIP over mutual TLS between the cloud (DNS zone) and the connector.",
    no_args_is_help=True,
)
zone_app = typer.Typer(
    name="zone", help="The edge's DNS and traversal zones.", no_args_is_help=True
)
edge_app.add_typer(zone_app, name="zone")


@contextlib.contextmanager
def _zones(data_dir: Path | None, database_url: str | None) -> Iterator[ZoneStore]:
    try:
        with open_zone_store(
            resolve_data_dir(data_dir, "edge"), database_url=database_url
        ) as store:
            yield store
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)


def _print_zone(zone: Zone) -> None:
    for key, value in zone.to_dict().items():
        typer.echo(f"{key.replace('_', ' '):<16} {value if value is not None else '-'}")


@zone_app.command("add")
def zone_add(
    name: Annotated[str, typer.Argument(help="Zone name, e.g. 'webex-cloud'.")],
    kind: Annotated[
        ZoneKind, typer.Option("--kind", help="dns: the cloud; traversal: the connector.")
    ] = ZoneKind.DNS,
    subject_name: Annotated[
        str | None,
        typer.Option("--subject-name", help="TLS verify subject name the peer must present."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="A known subject name instead: "
            + ", ".join(f"{k} ({v})" for k, v in PRESETS.items()),
        ),
    ] = None,
    cn_rule: Annotated[
        CnRule,
        typer.Option("--cn-rule", help="when_no_san: CN counts only without DNS/URI SANs."),
    ] = CnRule.WHEN_NO_SAN,
    wildcards: Annotated[
        bool, typer.Option("--wildcards", help="Accept '*.' in the left-most label.")
    ] = False,
    peer: Annotated[
        str | None,
        typer.Option("--peer", help="DNS zone: host:port the edge dials to reach the cloud."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Add a zone; anything that matches no zone is refused."""
    with _zones(data_dir, database_url) as store:
        try:
            zone = Zone(
                name=name,
                kind=kind,
                subject_name=subject_name_from(subject_name, preset),
                cn_rule=cn_rule,
                wildcards=wildcards,
                peer=PeerAddress.parse(peer) if peer is not None else None,
            )
            store.add(zone, actor=actor())
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json:
        print_json(zone.to_dict())
        return
    typer.echo(f"added {zone.kind.value} zone {zone.name!r}: subject name {zone.subject_name}")


@zone_app.command("list")
def zone_list(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """List the zones."""
    with _zones(data_dir, database_url) as store:
        zones = store.list()
    if json:
        print_json([z.to_dict() for z in zones])
        return
    if not zones:
        typer.echo("no zones: add one with 'hybridge edge zone add NAME --subject-name ...'")
        return
    for z in zones:
        peer = f" peer {z.peer}" if z.peer else ""
        typer.echo(
            f"{z.name:<20} {z.kind.value:<10} {z.subject_name}  cn={z.cn_rule.value} "
            f"wildcards={'on' if z.wildcards else 'off'}{peer}"
        )


@zone_app.command("show")
def zone_show(
    name: Annotated[str, typer.Argument(help="Zone name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Show one zone."""
    with _zones(data_dir, database_url) as store:
        try:
            zone = store.get(name)
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json:
        print_json(zone.to_dict())
        return
    _print_zone(zone)


@zone_app.command("remove")
def zone_remove(
    name: Annotated[str, typer.Argument(help="Zone name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Remove a zone (a running edge keeps its zones until restarted)."""
    with _zones(data_dir, database_url) as store:
        try:
            zone = store.remove(name, actor=actor())
        except HybridgeError as exc:
            fail(str(exc), exc.exit_code)
    if json:
        print_json({"removed": zone.to_dict()})
        return
    typer.echo(f"removed zone {zone.name!r}")


@edge_app.command("serve")
def serve(
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="The edge's certificate chain (PEM). [<data-dir>/edge.pem]"),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Its private key (PEM). [<data-dir>/edge.key]"),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    advertise: Annotated[
        str | None, typer.Option("--advertise", help="Host name put in Via and Record-Route.")
    ] = None,
    cloud_port: Annotated[
        int, typer.Option("--cloud-port", help="TLS port for the DNS zone (0: any free).")
    ] = DEFAULT_CLOUD_PORT,
    traversal_port: Annotated[
        int, typer.Option("--traversal-port", help="TLS port for the connector (0: any free).")
    ] = DEFAULT_TRAVERSAL_PORT,
    handshake_timeout: Annotated[float, typer.Option("--handshake-timeout")] = 5.0,
    header_timeout: Annotated[
        float,
        typer.Option("--header-timeout", help="Seconds for a whole message once it has begun."),
    ] = 5.0,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout")] = 600.0,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", help="Inbound connections held at once."),
    ] = 1024,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on host:PORT (0: any)."),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Run the edge until interrupted; SIGHUP reloads zones and trust store.

    Refused peers are logged one line each and counted by reason.
    """
    from hybridge.edge.server import EdgeServer
    from hybridge.edge.settings import EdgeSettings
    from hybridge.truststore import TrustUse, open_trust_store

    configure_logging(logging.INFO)
    directory = resolve_data_dir(data_dir, "edge")
    try:
        with open_zone_store(directory, database_url=database_url) as store:
            zones = store.list()
        # The edge's own trust store, platform anchors only: the bootstrap set is for the
        # connector's registration and is never usable here (DESIGN §3.1).
        with open_trust_store(directory, database_url=database_url) as trust:
            anchors = trust.anchors_for(TrustUse.PLATFORM)
        if not anchors:
            fail(
                f"the edge's trust store in {str(directory)!r} is empty; add the cloud's CA "
                f"with 'hybridge trust add --data-dir {directory} FILE'"
                + (" --database-url ..." if database_url else "")
            )
        settings = EdgeSettings(
            cert_file=cert or directory / "edge.pem",
            key_file=key or directory / "edge.key",
            host=host,
            advertise=advertise,
            cloud_port=cloud_port,
            traversal_port=traversal_port,
            handshake_timeout=handshake_timeout,
            header_timeout=header_timeout,
            idle_timeout=idle_timeout,
            max_connections=max_connections,
        )
        server = EdgeServer(settings, zones, anchors)
        install_uvloop()
        reload = functools.partial(_reload, server, directory, database_url)
        asyncio.run(_run(server, host, metrics_port, reload))
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)


def _reload(server: object, directory: Path, database_url: str | None) -> None:
    """SIGHUP: read the zones and the trust store again and apply them to ``server``."""
    from hybridge.edge.server import EdgeServer
    from hybridge.truststore import TrustUse, open_trust_store

    assert isinstance(server, EdgeServer)
    log = logging.getLogger("hybridge.edge")
    try:
        with open_zone_store(directory, database_url=database_url) as store:
            zones = store.list()
        with open_trust_store(directory, database_url=database_url) as trust:
            anchors = trust.anchors_for(TrustUse.PLATFORM)
        if not anchors:
            log.error("reload refused: the trust store is empty; the old configuration stays")
            return
        server.reload(zones, anchors)
    except HybridgeError as exc:
        log.error("reload failed, the old configuration stays: %s", exc)


async def _run(
    server: object, host: str, metrics_port: int | None, reload: Callable[[], None] | None = None
) -> None:
    from prometheus_client import start_http_server

    from hybridge.edge.server import EdgeServer

    assert isinstance(server, EdgeServer)
    await server.start()
    if metrics_port is not None:
        try:
            http, _thread = start_http_server(metrics_port, host, registry=server.metrics.registry)
        except OSError as exc:
            await server.close()
            raise EdgeSetupError(
                f"cannot serve metrics on {host}:{metrics_port}: {exc.strerror}"
            ) from exc
        logging.getLogger("hybridge.edge").info(
            "metrics on http://%s:%d/metrics", host, http.server_port
        )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.close()
