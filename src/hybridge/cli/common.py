"""What every ``hybridge`` command shares: the data directory, ``--json``, output and errors.

Exit statuses follow Unix habit and are the same for every command:

- 0: success;
- 1: a check ran and found problems (``trust check``, ``tls verify`` refusing a peer);
- 2: bad usage or bad input (Typer's own usage errors use 2 as well).

Errors go to stderr as one sentence; a traceback is a bug.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import platformdirs
import typer

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

DATA_DIR_ENV = "HYBRIDGE_DATA_DIR"

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=f"The role's data directory (default: ${DATA_DIR_ENV}, else a per-user directory).",
        file_okay=False,
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout instead of text.")
]


def resolve_data_dir(option: Path | None, role: str = "connector") -> Path:
    """The data directory: the option, else ``$HYBRIDGE_DATA_DIR``, else a per-user default."""
    if option is not None:
        return option
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("hybridge")) / role


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` to stderr as ``hybridge: <message>`` and exit with ``code``."""
    sys.stderr.write(f"hybridge: {message}\n")
    raise typer.Exit(code)
