"""The ``hybridge`` entry point: one CLI, three roles, and the tools around them.

Each package contributes a Typer sub-application; this module only wires them and turns a
``HybridgeError`` escaping a command into one sentence on stderr and its exit status.
"""

from __future__ import annotations

import importlib
import sys

import typer
import typer.main
from typer.core import TyperGroup

from hybridge import __version__
from hybridge.cli import _click as click
from hybridge.cli.common import configure_logging
from hybridge.core.errors import HybridgeError

# name -> (module, attribute). Sub-applications are imported only when their
# command runs (or for --help), so `hybridge trust list` does not pay for FastAPI and the
# web stack, and `hybridge --version` pays for nothing. Add a command with one line here.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "cloud": ("hybridge.cli.cloud", "cloud_app"),
    "connector": ("hybridge.cli.connector", "connector_app"),
    "demo": ("hybridge.cli.demo", "demo"),
    "edge": ("hybridge.cli.edge", "edge_app"),
    "pki": ("hybridge.cli.pki", "pki_app"),
    "tls": ("hybridge.cli.tls", "tls_app"),
    "trust": ("hybridge.cli.trust", "trust_app"),
}


class _LazyGroup(TyperGroup):
    """A Typer group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _SUBCOMMANDS:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = _SUBCOMMANDS[cmd_name]
        target = getattr(importlib.import_module(module_name), attribute)
        holder = typer.Typer()
        if isinstance(target, typer.Typer):
            # Nested under a holder so that Typer keeps it a group even when it has a
            # single command (on its own, Typer would collapse it into that command).
            holder.add_typer(target, name=cmd_name)
        else:
            holder.command(cmd_name)(target)
            holder.callback()(lambda: None)
        group = typer.main.get_command(holder)
        assert isinstance(group, TyperGroup)
        return group.get_command(ctx, cmd_name)


app = typer.Typer(
    name="hybridge",
    cls=_LazyGroup,
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


def main() -> None:
    """Run the CLI; a ``HybridgeError`` becomes one line on stderr and its exit status.

    Typer's standalone mode already maps usage errors to status 2 and ``typer.Exit`` to its
    code; only our own errors pass through it, and they are caught here.
    """
    configure_logging()
    try:
        app()
    except HybridgeError as exc:
        sys.stderr.write(f"hybridge: {exc}\n")
        sys.exit(exc.exit_code)
