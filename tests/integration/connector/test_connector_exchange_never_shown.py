"""Never shown (issue 6 item 2): after a full run — create a configuration, create a link,
the Exchange admin enters the password, test, replace the password, export, list, audit,
the CLI — the impersonation passwords (as UTF-8, UTF-16-LE and base64 of both, and the
Basic ``user:password`` form) are searched byte for byte in the SQLite files (with -wal),
the audit rows, the captured logs and output, every API response and every page. A planted
control proves that the search finds each form."""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from exchange_stack import PASSWORD, SVC, Ews, Exchange, ews, start
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hybridge.cli.main import app as main_app

__all__ = ["ews"]

SECOND = "Qv4?second-NEVER-shown-pw"


def forms(password: str) -> dict[str, bytes]:
    """Every encoding under which a password could leak."""
    out = {}
    for label, raw in (
        ("utf-8", password.encode()),
        ("utf-16-le", password.encode("utf-16-le")),
        ("basic", f"{SVC}:{password}".encode()),
    ):
        out[label] = raw
        out[f"base64({label})"] = base64.b64encode(raw)
    return out


def leaks(blob: bytes, passwords: tuple[str, ...] = (PASSWORD, SECOND)) -> list[str]:
    """The forms of ``passwords`` found in ``blob`` (empty when none is there)."""
    return [
        f"{password[:3]}…/{label}"
        for password in passwords
        for label, form in forms(password).items()
        if form in blob
    ]


def _cli(data_dir: Path, *args: str) -> Any:
    """The CLI in-process (its output captured); ``hybridge connector serve`` runs as a real
    process in ``test_connector_exchange_serve``."""
    return CliRunner().invoke(
        main_app, ["connector", "calendar", *args, "--data-dir", str(data_dir)]
    )


def test_the_control_finds_every_planted_form(tmp_path: Path) -> None:
    # The search must be able to fail: plant each form in a real SQLite file and find it.
    db = tmp_path / "planted.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v BLOB)")
        for form in forms(PASSWORD).values():
            conn.execute("INSERT INTO t VALUES (?)", (form,))
    found = leaks(db.read_bytes(), (PASSWORD,))
    assert len(found) == len(forms(PASSWORD)), found
    assert leaks(b"nothing here") == []


def test_full_run_never_shows_the_password(
    tmp_path: Path, ews: Ews, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # exchangelib dumps its request headers at DEBUG
    run = start(tmp_path, ews)
    app: Exchange = next(run)
    bodies = app.responses
    try:
        # 1. The connector admin creates the configuration (no password: it is not theirs).
        form = {
            "display_name": "Contoso",
            "endpoint": "ews_url",
            "ews_url": ews.url,
            "username": SVC,
            "auth": "NTLM",
            "test_mailbox": "room1@contoso.test",
            "verify_tls": "on",
        }
        created = app.post("/exchange/new", form, token_from="/exchange/new")
        assert created.status_code == 200 and "not tested: no password yet" in created.text
        config_id = app.service.configs()[0].id
        # 2. ... and a one-time link, on the page.
        linked = app.post(f"/exchange/{config_id}/link", {}, token_from=f"/exchange/{config_id}")
        match = re.search(r'id="link-url">([^<]+)<', linked.text)
        assert match
        path = urlsplit(match.group(1)).path
        # 3. The Exchange admin enters the password through it.
        browser = TestClient(app.client.app, base_url=app.client.base_url)
        page = browser.get(path)
        bodies.append(page.text)
        token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
        assert token
        entered = browser.post(
            path, data={"username": SVC, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        bodies.append(entered.text)
        assert 'data-code="ok"' in entered.text
        # 4. Tests: the API, the page button, and a failing one (wrong replacement).
        assert app.api("POST", f"/api/exchange/configs/{config_id}/test").json()["code"] == "ok"
        tested = app.post(f"/exchange/{config_id}/test", {}, token_from=f"/exchange/{config_id}")
        assert 'data-code="ok"' in tested.text
        wrong = app.api(
            "PUT",
            f"/api/exchange/configs/{config_id}",
            {"config": {**_api_config(ews), "auth": "Basic"}, "password": "wrong-" + SECOND},
        )
        assert wrong.status_code == 422
        # 5. The connector admin replaces the password on the page, switching to Basic.
        replaced = app.post(
            f"/exchange/{config_id}",
            {**form, "auth": "Basic", "password": SECOND, "save_anyway": "yes"},
            token_from=f"/exchange/{config_id}",
        )
        assert replaced.status_code == 200, replaced.text
        assert "version 2" in replaced.text
        # 6. Export, list, show: API, pages and the CLI.
        for path_ in ("/api/exchange/export", "/api/exchange/configs"):
            assert app.api("GET", path_).status_code == 200
        for path_ in ("/exchange", f"/exchange/{config_id}", "/metrics"):
            assert app.page(path_).status_code == 200
        cli_out = []
        for args in (
            ("config", "list", "--json"),
            ("config", "show", config_id),
            ("test", config_id),
        ):
            result = _cli(app.data_dir, *args)
            cli_out += [result.stdout, result.stderr]
        # Basic with the replaced (wrong for the emulator) password: a named failure, exit 1.
        assert result.exit_code == 1, result.output
        assert "connection test: unauthorized" in result.stdout
        # The CLI's Basic test would have failed (the emulator's svc password is PASSWORD).
        with app.services.database.transaction() as db:
            audit = db.execute(sa.text("SELECT * FROM audit_log ORDER BY id")).all()
        assert {"exchange.link.create", "exchange.link.use", "exchange.test"} <= {
            row.action for row in audit
        }
    finally:
        next(run, None)
    captured = capfd.readouterr()
    # Where a leak would be: each searched separately, so a failure names the place.
    places: dict[str, bytes] = {
        "responses": "\n".join(bodies).encode(),
        "logs": caplog.text.encode() + "\n".join(r.getMessage() for r in caplog.records).encode(),
        "stdout+stderr": (captured.out + captured.err).encode(),
        "cli": "\n".join(cli_out).encode(),
        "audit rows": repr(audit).encode(),
    }
    for file in sorted(app.data_dir.rglob("*")):
        if file.is_file():
            places[str(file.relative_to(app.data_dir))] = file.read_bytes()
    assert any(
        name.endswith("-wal") or name.endswith(".sqlite") or ".db" in name for name in places
    )
    assert "Request headers" in caplog.text  # exchangelib's dumps were captured (and masked)
    assert len(bodies) >= 15
    found = {place: leaks(blob) for place, blob in places.items()}
    assert {place: hits for place, hits in found.items() if hits} == {}


def _api_config(ews: Ews) -> dict[str, object]:
    return {
        "display_name": "Contoso",
        "ews_url": ews.url,
        "username": SVC,
        "auth": "NTLM",
        "test_mailbox": "room1@contoso.test",
    }
