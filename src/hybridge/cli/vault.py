"""``hybridge connector vault``: the credential vault's master key, from the command line.

Commands show key ids, locations and counts, never a secret or a key. The master key comes
from ``HYBRIDGE_MASTER_KEY_COMMAND``, ``HYBRIDGE_MASTER_KEY`` or the key file (default
``<data-dir>/keys/master.key``); see ``hybridge.vault.keys``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from hybridge.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    fail,
    node_database_url,
    print_json,
    resolve_data_dir,
)
from hybridge.core.errors import HybridgeError
from hybridge.storage.db import Database, open_database
from hybridge.vault import (
    CommandKeySource,
    EnvKeySource,
    KeyFileSource,
    RotationResult,
    Vault,
    configured_source,
    finish_rotation,
    read_status,
    rotate_data_key,
    rotate_master_key,
)
from hybridge.vault.keys import MasterKeySource

vault_app = typer.Typer(
    name="vault",
    help="The credential vault: master key status and rotation (secrets are never shown).",
    no_args_is_help=True,
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"


@contextmanager
def _opened(
    data_dir: Path | None, database_url: str | None
) -> Iterator[tuple[Database, MasterKeySource, Path]]:
    """The node database and the configured key source.

    A ``HybridgeError`` raised in the ``with`` body too becomes one line on stderr and its
    exit status, so the commands below stay free of error handling.
    """
    directory = resolve_data_dir(data_dir)
    database: Database | None = None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = open_database(node_database_url(directory, database_url), "node")
        yield database, configured_source(directory), directory
    except HybridgeError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"cannot use the data directory {str(directory)!r}: {exc.strerror or exc}")
    finally:
        if database is not None:
            database.dispose()


@vault_app.command(
    "status",
    help=(
        "Show the master key's id and location, the data key and how many secrets are kept "
        "(never a secret). Exit status 1 when the vault is not initialized, the configured "
        "key does not open it, or (with --verify) a secret fails to decrypt."
    ),
)
def status(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also decrypt every secret (values discarded) and list those that fail.",
        ),
    ] = False,
) -> None:
    """Print the vault's status (the help text is in the decorator)."""
    failures: list[dict[str, str]] = []
    with _opened(data_dir, database_url) as (database, source, _):
        report = read_status(database, source)
        if verify and report.key_ok:
            vault = Vault.open(database, source)
            failures = [
                {"secret_id": ref.secret_id, "purpose": ref.purpose, "problem": problem}
                for ref, problem in vault.verify()
            ]
    healthy = report.key_ok and not failures
    if as_json:
        print_json(report.as_dict() | ({"failing_secrets": failures} if verify else {}))
    else:
        typer.echo(f"initialized:      {'yes' if report.initialized else 'no'}")
        typer.echo(f"master key id:    {report.master_key_id or '-'}")
        if report.next_master_key_id:
            typer.echo(f"rotation pending: new master key {report.next_master_key_id}")
        typer.echo(f"key provider:     {report.key_provider} ({report.key_location})")
        typer.echo(f"configured key:   {report.configured_key_id or '-'}")
        typer.echo(f"key opens vault:  {'yes' if report.key_ok else 'no'}")
        created = report.data_key_created_at.isoformat() if report.data_key_created_at else "-"
        typer.echo(f"data key:         {report.data_key_id or '-'} (created {created})")
        typer.echo(f"secrets:          {report.secrets_count}")
        for purpose, count in report.secrets_by_purpose.items():
            typer.echo(f"  {purpose}: {count}")
        if verify and report.key_ok:
            typer.echo(f"failing secrets:  {len(failures)}")
            for failure in failures:
                typer.echo(f"  {failure['problem']}")
        if report.key_problem:
            typer.echo(f"problem:          {report.key_problem}", err=True)
    raise typer.Exit(EXIT_OK if healthy else EXIT_PROBLEMS)


@vault_app.command(
    "init",
    help=(
        "Create the vault's data key, and the master key file if no other key source is set. "
        "On a vault that exists it changes nothing and only checks that the key opens it."
    ),
)
def init(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Initialize the vault (the help text is in the decorator)."""
    with _opened(data_dir, database_url) as (database, source, _):
        vault = Vault.open(database, source, create=True, actor=_actor())
    result = {"master_key_id": vault.master_key_id, "key_location": source.location}
    if as_json:
        print_json(result)
    else:
        typer.echo(f"vault ready under master key {vault.master_key_id} ({source.location})")
        if isinstance(source, KeyFileSource):
            typer.echo(
                f"back up {source.path} somewhere apart from the database: without it no "
                f"stored secret can be read"
            )


NewKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--new-key-env",
        help="Name of an environment variable holding the new key (base64); two-phase rotation.",
        show_default=False,
    ),
]
NewKeyCommandOption = Annotated[
    str | None,
    typer.Option(
        "--new-key-command",
        help="A command printing the new key (base64), run without a shell; two-phase rotation.",
        show_default=False,
    ),
]
NewKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--new-key-file",
        help="A file holding the new key (base64, mode 0600); two-phase rotation.",
        dir_okay=False,
        show_default=False,
    ),
]
FinishOption = Annotated[
    bool,
    typer.Option(
        "--finish",
        help="Finish a two-phase rotation once the configuration points at the new key.",
    ),
]


def _print_result(result: RotationResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "kind": result.kind,
                "phase": result.phase,
                "old_key_id": result.old_key_id,
                "new_key_id": result.new_key_id,
                "message": result.message,
            }
        )
    else:
        typer.echo(result.message)


ROTATE_KEY_HELP = (
    "Re-wrap the data key under a new master key, without stopping the connector. "
    "With the key file (the default) this generates the new key and replaces the file, "
    "safe against a crash at any step (run it again after one). With a key held elsewhere, "
    "give the new key with --new-key-env, --new-key-command or --new-key-file: both keys "
    "then open the vault until you switch the configuration and run rotate-key --finish."
)


@vault_app.command("rotate-key", help=ROTATE_KEY_HELP)
def rotate_key(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    new_key_env: NewKeyEnvOption = None,
    new_key_command: NewKeyCommandOption = None,
    new_key_file: NewKeyFileOption = None,
    finish: FinishOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rotate the master key (the help text is ``ROTATE_KEY_HELP``)."""
    given = [o for o in (new_key_env, new_key_command, new_key_file) if o is not None]
    if len(given) > 1 or (given and finish):
        fail("give at most one of --new-key-env, --new-key-command, --new-key-file, --finish")
    with _opened(data_dir, database_url) as (database, source, _):
        new_source: MasterKeySource | None = None
        if new_key_env is not None:
            new_source = EnvKeySource(new_key_env)
        elif new_key_command is not None:
            new_source = CommandKeySource.parse(new_key_command)
        elif new_key_file is not None:
            new_source = KeyFileSource(new_key_file)
        if finish:
            result = finish_rotation(database, source, actor=_actor())
        else:
            result = rotate_master_key(database, source, new_source=new_source, actor=_actor())
    _print_result(result, as_json)


@vault_app.command("rotate-data-key")
def rotate_data_key_command(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a new data key and re-encrypt every secret under it, in one transaction."""
    with _opened(data_dir, database_url) as (database, source, _):
        result = rotate_data_key(database, source, actor=_actor())
    _print_result(result, as_json)
