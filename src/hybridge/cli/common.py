"""What every ``hybridge`` command shares: the data directory, ``--json``, output and errors.

Exit statuses follow Unix habit and are the same for every command:

- 0: success;
- 1: a check ran and found problems (``trust check``, ``tls verify`` refusing a peer);
- 2: bad usage or bad input (Typer's own usage errors use 2 as well).

Errors go to stderr as one sentence; a traceback is a bug.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import platformdirs
import structlog
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
DATABASE_URL_ENV = "HYBRIDGE_DATABASE_URL"

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=DATABASE_URL_ENV,
        show_envvar=True,
        show_default=False,
        help="The role's database: sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB "
        "(default: SQLite in the data directory). Prefer the environment variable for a URL "
        "holding a password: a command line is visible to every local user.",
    ),
]
ServerCertOption = Annotated[
    Path,
    typer.Option("--cert", help="Server certificate chain (PEM).", exists=True, dir_okay=False),
]
ServerKeyOption = Annotated[
    Path, typer.Option("--key", help="Server private key (PEM).", exists=True, dir_okay=False)
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


def node_database_url(directory: Path, option: str | None) -> str:
    """The node database URL of a connector or an edge whose data directory is ``directory``.

    ``option`` is ``--database-url`` (or ``$HYBRIDGE_DATABASE_URL``, which Typer reads for
    it); unset, the SQLite file every node command shares: ``<directory>/hybridge.db``.
    """
    if option:
        return option
    from hybridge.storage.db import sqlite_url  # imported on use: SQLAlchemy is slow to load
    from hybridge.truststore.services import DATABASE_NAME

    return sqlite_url(directory / DATABASE_NAME)


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``message`` to stderr as ``hybridge: <message>`` and exit with ``code``."""
    sys.stderr.write(f"hybridge: {message}\n")
    raise typer.Exit(code)


LOG_LEVEL_ENV = "HYBRIDGE_LOG_LEVEL"


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Looked up at each call, never bound once: tests swap sys.stderr.
    return structlog.PrintLogger(sys.stderr)


def route_logs_to_stderr() -> None:
    """Make structlog write to stderr (its default is stdout, which carries ``--json``)."""
    structlog.configure(logger_factory=_stderr_logger)


# Any command module imports this one: from then on no log line can reach stdout, even for a
# sub-application run on its own (as tests do). Levels are set by ``configure_logging``.
if not structlog.is_configured():
    route_logs_to_stderr()


def configure_logging(default: int = logging.WARNING) -> None:
    """Send every log line (structlog and stdlib) to stderr, at ``$HYBRIDGE_LOG_LEVEL`` or
    ``default``.

    stdout carries ``--json`` and command output, so logs never go there. One-shot commands
    log warnings and errors only (their result is what they print); ``serve`` commands pass
    ``logging.INFO`` so that an operator sees every decision (bootstrap-anchor uses, refused
    peers).
    """
    name = os.environ.get(LOG_LEVEL_ENV, "").upper()
    level = logging.getLevelNamesMapping().get(name, default)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))


def uvloop_available() -> bool:
    """Whether uvloop can be imported (a dependency; absent on platforms it does not build on)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def install_uvloop() -> bool:
    """Make ``asyncio.run`` use uvloop's event loop when importable; returns whether it does.

    uvloop's loop does the TLS and socket work of many connections in C: the cloud holds one
    control WebSocket per connector with a fraction of the memory and CPU of the stdlib loop
    (see bench/push_fanout.py), and the edge relays faster.
    """
    if not uvloop_available():
        return False
    import uvloop

    uvloop.install()
    return True


def uvicorn_loop() -> str:
    """uvicorn's ``loop=`` value: ``"uvloop"`` when importable, else ``"asyncio"``.

    Named explicitly rather than uvicorn's ``"auto"`` so that the choice is ours, the same
    for every ``serve`` command, and does not change with a uvicorn release.
    """
    return "uvloop" if uvloop_available() else "asyncio"


def read_password(password_stdin: bool) -> str:
    """A new password: one line of stdin with ``--password-stdin``, else a hidden prompt
    asked twice. Never a command-line argument: argv is visible to every local user (ps,
    /proc) and lands in shell history.
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
