"""The ``hybridge`` entry point: one CLI, three roles, and the tools around them.

Each package contributes a Typer sub-application; this module only wires them and turns a
``HybridgeError`` escaping a command into one sentence on stderr and its exit status.
"""

from __future__ import annotations

import sys

import typer

from hybridge import __version__
from hybridge.core.errors import HybridgeError

app = typer.Typer(
    name="hybridge",
    help="Hybridge: connect an organisation's premises to a cloud service securely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hybridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hybridge: connect an organisation's premises to a cloud service securely."""


def _register() -> None:
    # Sub-applications are added here, one line each, as packages grow their commands.
    from hybridge.cli.pki import pki_app

    app.add_typer(pki_app, name="pki")
    from hybridge.cli.trust import trust_app

    app.add_typer(trust_app, name="trust")
    from hybridge.cli.demo import demo

    app.command("demo")(demo)
    from hybridge.cli.connector import connector_app

    app.add_typer(connector_app, name="connector")
    from hybridge.cli.cloud import cloud_app

    app.add_typer(cloud_app, name="cloud")
    from hybridge.cli.tls import tls_app

    app.add_typer(tls_app, name="tls")
    pass


_register()


def main() -> None:
    """Run the CLI; a ``HybridgeError`` becomes one line on stderr and its exit status.

    Typer's standalone mode already maps usage errors to status 2 and ``typer.Exit`` to its
    code; only our own errors pass through it, and they are caught here.
    """
    try:
        app()
    except HybridgeError as exc:
        sys.stderr.write(f"hybridge: {exc}\n")
        sys.exit(exc.exit_code)
