"""A connector whose node database is PostgreSQL, configured through its CLI.

``--database-url`` and ``$HYBRIDGE_DATABASE_URL`` point ``connector admin create``, ``trust
add``, ``connector traversal set/show``, ``connector vault status`` and ``connector status``
(the whole app, as ``serve`` builds it) at one throw-away PostgreSQL database
(tests/pgserver.py). What one command writes, the next reads back from there; the data
directory keeps only the vault's master key file, never a SQLite database.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

import certs
from hybridge.cli.main import app
from hybridge.storage.db import open_database
from hybridge.web.accounts import authenticate
from hybridge.web.clock import system_clock
from hybridge.web.throttle import ThrottlePolicy


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def _pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = certs.build("Connector PostgreSQL Root")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False)
    paths = tmp_path / "root.pem", tmp_path / "traversal.pem", tmp_path / "traversal.key"
    paths[0].write_bytes(root.pem)
    paths[1].write_bytes(leaf.pem)
    paths[2].write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_a_connector_configured_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    data = tmp_path / "connector"
    d = str(data)
    on_pg = ("--data-dir", d, "--database-url", postgres_url)
    env = {"HYBRIDGE_DATABASE_URL": postgres_url}
    root, cert, key = _pki(tmp_path)

    code, out = cli("connector", "admin", "create", "--login", "admin", "--password-stdin",
                    *on_pg, "--json", stdin="a long enough password\n")  # fmt: skip
    assert code == 0, out
    code, out = cli("trust", "add", str(root), "--data-dir", d, "--json", env=env)
    assert code == 0, out
    code, out = cli("connector", "traversal", "set", "--edge", "edge.example.test:7001",
                    "--edge-name", "edge.example.test",
                    "--premises", "sip:pbx.example.test:5061;transport=tls",
                    "--cert", str(cert), "--key", str(key), *on_pg)  # fmt: skip
    assert code == 0, out

    code, out = cli("connector", "traversal", "show", "--data-dir", d, "--json", env=env)
    assert code == 0, out
    assert json.loads(out)["config"]["edge"] == "edge.example.test:7001"
    code, out = cli("trust", "list", *on_pg, "--json")
    assert code == 0 and [a["subject"] for a in json.loads(out)] == [
        "CN=Connector PostgreSQL Root,O=Hybridge Tests,C=US"
    ], out
    code, out = cli("connector", "vault", "status", *on_pg, "--json")
    assert code == 0, out
    assert json.loads(out)["secrets_by_purpose"] == {"connector.traversal_key": 1}
    code, out = cli("connector", "status", "--data-dir", d, "--json", env=env)
    assert code == 0 and json.loads(out) == {"registered": False}, out

    database = open_database(postgres_url, "node")
    try:
        with database.transaction() as db:
            account = authenticate(
                db, "admin", "a long enough password", "cli", ThrottlePolicy(), system_clock()
            )
        assert account.login == "admin"
    finally:
        database.dispose()
    assert not (data / "hybridge.db").exists()
    # The twin: without the URL the same directory is a connector with nothing configured.
    code, out = cli("connector", "traversal", "show", "--data-dir", d, "--json")
    assert code == 1 and json.loads(out) == {"configured": False, "config": None}
