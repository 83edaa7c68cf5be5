"""Portal login: argon2id hashes, throttling per account, sessions rotated at login."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from cloud_helpers import PASSWORD, Cloud, csrf_of
from typer.testing import CliRunner

from hybridge.cli.main import app
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.errors import WeakPassword, WebError
from hybridge.web.schema import web_admin


def _attempt(cloud: Cloud, email: str, password: str):
    page = cloud.client.get("/login")
    return cloud.client.post(
        "/login",
        data={"login": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_password_hashes_are_argon2id(cloud: Cloud) -> None:
    with cloud.services.database.transaction() as db:
        hashes = list(db.execute(sa.select(web_admin.c.password_hash)).scalars())
    assert len(hashes) == 2
    for value in hashes:
        assert value.startswith("$argon2id$v=19$")
        assert PASSWORD not in value


def test_throttling_locks_the_account_even_for_the_right_password(cloud: Cloud) -> None:
    for _ in range(3):  # the fixture's policy: 3 free failures
        assert _attempt(cloud, "alice@acme.test", "wrong password!").status_code == 401
    response = _attempt(cloud, "alice@acme.test", "wrong password!")
    assert response.status_code == 401  # the 4th failure sets a 1 s lock
    locked = _attempt(cloud, "alice@acme.test", PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "1"
    assert "too many failed logins" in locked.text
    cloud.clock.advance(seconds=1)
    assert _attempt(cloud, "alice@acme.test", "wrong again!!").status_code == 401
    assert _attempt(cloud, "alice@acme.test", PASSWORD).headers["retry-after"] == "2"  # doubled
    cloud.clock.advance(seconds=2)
    assert _attempt(cloud, "alice@acme.test", PASSWORD).status_code == 303
    # Another account from the same address is not locked by alice's failures.
    assert _attempt(cloud, "bob@bravo.test", PASSWORD).status_code == 303


def test_unknown_and_wrong_password_say_the_same(cloud: Cloud) -> None:
    unknown = _attempt(cloud, "nobody@acme.test", "whatever password")
    wrong = _attempt(cloud, "alice@acme.test", "whatever password")
    assert unknown.status_code == wrong.status_code == 401
    assert "wrong login or password" in unknown.text and "wrong login or password" in wrong.text


def test_login_rotates_the_session_and_sets_a_host_cookie(cloud: Cloud) -> None:
    cloud.client.get("/login")
    before = cloud.client.cookies.get("__Host-hybridge-cloud")
    response = _attempt(cloud, "alice@acme.test", PASSWORD)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-hybridge-cloud=")
    for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
        assert attribute in cookie
    assert "Domain" not in cookie
    assert cloud.client.cookies.get("__Host-hybridge-cloud") != before


def _cli(data_dir: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hybridge",
            "cloud",
            "admin",
            "create",
            "--data-dir",
            str(data_dir),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _in_process(data_dir: Path, *args: str, stdin: str):
    # The same Typer app in-process (no new interpreter): for the refusals.
    return CliRunner().invoke(
        app, ["cloud", "admin", "create", "--data-dir", str(data_dir), *args], input=stdin
    )


def test_cli_admin_create_reads_the_password_from_stdin_only(tmp_path: Path) -> None:
    secret = "a long enough secret phrase"
    result = _cli(
        tmp_path,
        "--org",
        "Acme",
        "--email",
        "Root@Acme.test",
        "--operator",
        "--password-stdin",
        stdin=secret + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "admin root@acme.test created in organisation Acme (cloud operator)"
    )
    assert secret not in result.stdout + result.stderr
    database = open_database(sqlite_url(tmp_path / "cloud.db"), "cloud")
    with database.transaction() as db:
        stored = db.execute(sa.select(web_admin.c.password_hash)).scalar_one()
    database.dispose()
    assert stored.startswith("$argon2id$")


def test_cli_admin_create_refusals(tmp_path: Path) -> None:
    secret = "a long enough secret phrase"
    first = _in_process(
        tmp_path,
        "--org",
        "Acme",
        "--email",
        "root@acme.test",
        "--password-stdin",
        stdin=secret + "\n",
    )
    assert first.exit_code == 0, first.output
    again = _in_process(
        tmp_path,
        "--org",
        "Acme",
        "--email",
        "root@acme.test",
        "--password-stdin",
        stdin=secret + "\n",
    )
    assert isinstance(again.exception, WebError)
    assert str(again.exception) == "an admin with login 'root@acme.test' already exists"
    short = _in_process(
        tmp_path, "--org", "Acme", "--email", "x@acme.test", "--password-stdin", stdin="short\n"
    )
    assert isinstance(short.exception, WeakPassword)
    assert str(short.exception) == "password has 5 characters; at least 12 needed"
    empty = _in_process(
        tmp_path, "--org", "Acme", "--email", "y@acme.test", "--password-stdin", stdin="\n"
    )
    assert empty.exit_code == 2 and "no password on standard input" in empty.output
    assert secret not in first.output + again.output


def test_cli_has_no_password_argument() -> None:
    result = CliRunner().invoke(app, ["cloud", "admin", "create", "--help"])
    assert "--password-stdin" in result.output
    assert "--password " not in result.output
