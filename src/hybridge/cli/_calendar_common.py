"""What ``hybridge connector calendar`` (EWS) and ``... calendar graph`` share.

Both read a write-only credential from standard input or a hidden prompt (never from an
argument: argv is visible to every local user), print a connection test the same way, and
turn a save or a test into output and an exit status the same way: 0 saved / test passed,
1 the test failed (and, for a save, nothing was saved), 2 bad input.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from hybridge.cli.common import EXIT_PROBLEMS, fail, print_json, resolve_data_dir

if TYPE_CHECKING:
    from hybridge.connector.exchange import ExchangeService
    from hybridge.connector.exchange_graph import GraphConfigService
    from hybridge.vault import Secret

DEFAULT_BASE_URL = "https://localhost:9443"


def actor() -> str:
    """The audit actor of this command: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


def open_exchange(
    data_dir: Path | None, base_url: str = DEFAULT_BASE_URL, *, database_url: str | None = None
) -> ExchangeService:
    """The service ``create_app`` wires (same database, vault and trust store as the app).

    Exits with the error's status when the database, trust store or vault is unusable.
    """
    from hybridge.connector.app import create_app
    from hybridge.connector.settings import ConnectorSettings
    from hybridge.core.errors import HybridgeError

    try:
        settings = ConnectorSettings(
            data_dir=resolve_data_dir(data_dir),
            base_url=base_url,
            database_url=database_url or None,
        )
    except ValueError as exc:
        fail(str(exc))
    try:
        service: ExchangeService = create_app(settings).state.exchange
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    return service


def open_graph(
    data_dir: Path | None, base_url: str = DEFAULT_BASE_URL, *, database_url: str | None = None
) -> GraphConfigService:
    """The Graph configurations of the service ``open_exchange`` returns."""
    return open_exchange(data_dir, base_url, database_url=database_url).graph


def read_secret(prompt: str, missing: str) -> Secret:
    """One line of standard input, or a hidden ``prompt`` on a terminal, as a ``Secret``.

    Exits with status 2 and ``missing`` when there is none.
    """
    from hybridge.vault import Secret

    line = sys.stdin.readline().rstrip("\r\n") if not sys.stdin.isatty() else ""
    if not line and sys.stdin.isatty():
        line = str(typer.prompt(prompt, hide_input=True))
    if not line:
        fail(missing)
    return Secret.from_text(line)


def fail_on(exc: Exception) -> NoReturn:
    """Exit with status 2 and the message of a ``HybridgeError``; re-raise anything else."""
    from hybridge.core.errors import HybridgeError

    if isinstance(exc, HybridgeError):
        fail(str(exc))
    raise exc


def print_test(result: Any, fix_heading: str) -> None:
    """A connection test's code, message and, under ``fix_heading``, its fix."""
    typer.echo(f"connection test: {result.code}")
    typer.echo(result.message)
    if result.fix:
        typer.echo(fix_heading)
        typer.echo(result.fix)


def report_save(outcome: Any, *, json_output: bool, fix_heading: str) -> None:
    """Print a save's outcome; exit with status 1 when nothing was saved."""
    if json_output:
        print_json(outcome.view())
    else:
        if outcome.test is not None:
            print_test(outcome.test, fix_heading)
        if outcome.saved and outcome.record is not None:
            forced = " despite the failed test" if outcome.forced else ""
            typer.echo(f"saved {outcome.record.id} ({outcome.record.config.display_name}){forced}")
        else:
            typer.echo("not saved: the connection test failed (use --save-anyway to insist)")
    if not outcome.saved:
        raise typer.Exit(EXIT_PROBLEMS)


def report_test(result: Any, view: dict[str, Any], *, json_output: bool, fix_heading: str) -> None:
    """Print a test (``view`` is its JSON); exit with status 1 when it failed."""
    if json_output:
        print_json(view)
    else:
        print_test(result, fix_heading)
    if not result.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def show_view(view: dict[str, Any], *, json_output: bool) -> None:
    """Print one configuration's public view, as JSON or one ``key: value`` a line."""
    if json_output:
        print_json(view)
        return
    for key, value in view.items():
        typer.echo(f"{key}: {value}")


def link_view(config_id: str, issued: Any, url: str) -> dict[str, Any]:
    """A credential-entry link as JSON (the same shape as the API's answer)."""
    return {
        "link_id": issued.link_id,
        "config_id": config_id,
        "url": url,
        "expires_at": issued.expires_at.isoformat(),
    }


def report_link(config_id: str, issued: Any, url: str, *, json_output: bool, admin: str) -> None:
    """Print a new credential-entry link for ``admin`` ("the Exchange admin")."""
    if json_output:
        print_json(link_view(config_id, issued, url))
        return
    typer.echo(
        f"send this link to {admin} (works once, until {issued.expires_at:%Y-%m-%d %H:%M} UTC):"
    )
    typer.echo(url)
