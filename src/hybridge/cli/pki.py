"""``hybridge pki``: local PKI tools (``init-demo``: the demo PKI of every role)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.common import JsonOption, print_json
from hybridge.demo.pki import init_demo_pki

pki_app = typer.Typer(help="Local PKI tools for the demo and the tests.", no_args_is_help=True)


@pki_app.command("init-demo")
def init_demo(
    directory: Annotated[Path, typer.Argument(help="Directory to create the demo PKI in.")],
    json_output: JsonOption = False,
) -> None:
    """Create a demo root CA, the cloud, call-service, connector and edge certificates,
    the connector's bootstrap bundle, the connector CA and the list-signing key.

    Idempotent on a complete demo PKI; refuses a directory holding anything else.
    """
    pki, created = init_demo_pki(directory)
    files = {name: str(path) for name, path in pki.files().items()}
    if json_output:
        print_json({"directory": str(directory), "created": created, "files": files})
        return
    typer.echo(f"{'created' if created else 'already complete'}: demo PKI in {directory}")
    for name, path in files.items():
        typer.echo(f"  {name:22} {path}")
