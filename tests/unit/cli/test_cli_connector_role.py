"""``hybridge connector admin create / status / deregister`` on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hybridge.cli.main import app
from hybridge.connector.errors import NotRegistered
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.accounts import authenticate
from hybridge.web.clock import system_clock
from hybridge.web.throttle import ThrottlePolicy


def test_admin_create_reads_the_password_from_stdin_and_hashes_it(tmp_path: Path) -> None:
    data = tmp_path / "connector"
    result = CliRunner().invoke(
        app,
        ["connector", "admin", "create", "--login", "Admin", "--password-stdin",
         "--data-dir", str(data), "--json"],
        input="a long enough password\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["login"] == "admin"
    assert "a long enough password" not in result.output
    database = open_database(sqlite_url(data / "hybridge.db"), "node")
    try:
        with database.transaction() as db:
            account = authenticate(
                db, "admin", "a long enough password", "cli", ThrottlePolicy(), system_clock()
            )
        assert account.login == "admin"
    finally:
        database.dispose()


def test_admin_create_refuses_a_short_password_and_a_duplicate(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    args = ["connector", "admin", "create", "--login", "admin", "--password-stdin", "--data-dir"]
    short = CliRunner().invoke(app, [*args, data], input="short\n")
    # One line on stderr and status 2, not a traceback (cli/common.py).
    assert short.exit_code == 2
    assert short.stderr.startswith("hybridge: ") and "password has 5 characters" in short.stderr
    assert CliRunner().invoke(app, [*args, data], input="a long enough password\n").exit_code == 0
    again = CliRunner().invoke(app, [*args, data], input="another long password\n")
    assert again.exit_code == 2
    assert "an admin with login 'admin' already exists" in again.stderr


def test_status_and_deregister_when_not_registered(tmp_path: Path) -> None:
    data = str(tmp_path / "connector")
    status = CliRunner().invoke(app, ["connector", "status", "--data-dir", data, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout) == {"registered": False}
    refused = CliRunner().invoke(app, ["connector", "deregister", "--data-dir", data])
    assert isinstance(refused.exception, NotRegistered)
    assert str(refused.exception) == "this connector is not registered to a cloud"
