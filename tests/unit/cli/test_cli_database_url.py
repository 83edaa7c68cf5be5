"""``--database-url`` / ``$HYBRIDGE_DATABASE_URL`` refused on every edge and connector command.

A URL that cannot be parsed, or that names a server where nothing listens, is one line on
stderr and exit status 2 — never a traceback, never the password, and never a silent fall
back to the SQLite file of the data directory (which must not even be created). The
accepting twins run against a real PostgreSQL server in tests/integration/edge and
tests/integration/connector.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

import certs
from hybridge.cli.main import app

SECRET = "s3cret-pw"
UNPARSEABLE = f"postgres ql://hybridge:{SECRET}@127.0.0.1/hybridge"
PARSE_ERROR = (
    "the database URL cannot be parsed; expected sqlite:///<path> or "
    "postgresql://<user>:<password>@<host>:<port>/<database>"
)


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout + result.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # bound then closed: nothing listens there


def _server_files(tmp_path: Path) -> tuple[str, str]:
    root = certs.build("Database URL Root")
    leaf = certs.build("localhost", issuer=root, is_ca=False, san=("localhost",))
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(leaf.pem)
    key.write_bytes(_key_pem(leaf))
    return str(cert), str(key)


def _key_pem(issued: certs.Issued) -> bytes:
    return issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


COMMANDS: list[tuple[str, ...]] = [
    ("edge", "zone", "list"),
    ("edge", "zone", "add", "cloud", "--preset", "webex"),
    ("trust", "list"),
    ("connector", "traversal", "show"),
    ("connector", "vault", "status"),
    ("connector", "calendar", "config", "list"),
    ("connector", "calendar", "graph", "list"),
    ("connector", "status"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:3]))
def test_an_unparseable_url_is_exit_2_without_the_password(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "node"
    code, output = cli(*command, "--data-dir", str(data), "--database-url", UNPARSEABLE)
    assert code == 2, output
    assert output.startswith("hybridge: ") and output.count("\n") == 1, output
    assert PARSE_ERROR in output
    assert SECRET not in output
    assert not (data / "hybridge.db").exists()


@pytest.mark.parametrize("command", COMMANDS[:4], ids=lambda c: " ".join(c[:3]))
def test_the_environment_variable_is_read_when_the_option_is_not_given(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "node"
    code, output = cli(
        *command, "--data-dir", str(data), env={"HYBRIDGE_DATABASE_URL": UNPARSEABLE}
    )
    assert code == 2 and PARSE_ERROR in output and SECRET not in output
    assert not (data / "hybridge.db").exists()


def test_a_server_where_nothing_listens_is_exit_2_with_the_password_masked(
    tmp_path: Path,
) -> None:
    port = _closed_port()
    url = f"postgresql://hybridge:{SECRET}@127.0.0.1:{port}/hybridge"
    code, output = cli("edge", "zone", "list", "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 2, output
    assert (
        f"hybridge: cannot open the edge database: cannot open database "
        f"postgresql+psycopg://hybridge:***@127.0.0.1:{port}/hybridge"
    ) in output
    assert SECRET not in output


def test_serve_commands_refuse_a_bad_url_before_listening(tmp_path: Path) -> None:
    cert, key = _server_files(tmp_path)
    edge = tmp_path / "edge"
    code, output = cli("edge", "serve", "--cert", cert, "--key", key, "--data-dir", str(edge),
                       "--cloud-port", "0", "--traversal-port", "0",
                       "--database-url", UNPARSEABLE)  # fmt: skip
    assert code == 2 and PARSE_ERROR in output and SECRET not in output, output
    connector = tmp_path / "connector"
    code, output = cli("connector", "serve", "--cert", cert, "--key", key, "--port", "0",
                       "--data-dir", str(connector), "--database-url", UNPARSEABLE)  # fmt: skip
    assert code == 2 and PARSE_ERROR in output and SECRET not in output, output
    assert "Traceback" not in output
    assert not (edge / "hybridge.db").exists() and not (connector / "hybridge.db").exists()


def test_admin_create_refuses_a_bad_url_after_reading_the_password(tmp_path: Path) -> None:
    code, output = cli("connector", "admin", "create", "--login", "alice", "--password-stdin",
                       "--data-dir", str(tmp_path), "--database-url", UNPARSEABLE,
                       stdin="correct horse battery staple\n")  # fmt: skip
    assert code == 2 and PARSE_ERROR in output and SECRET not in output, output
    assert "correct horse" not in output
