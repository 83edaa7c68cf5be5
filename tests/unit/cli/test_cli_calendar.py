"""``hybridge connector calendar``: config set/show/list, link create, test — on a real data
directory (SQLite, vault key file, trust store) against the EWS emulator over TLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from typer.testing import CliRunner

from hybridge.cli.main import app
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
)
from hybridge.truststore import CertificateSource, open_trust_store

PASSWORD = "Cli!imp3rsonation-pw"
SVC = "CONTOSO\\svc-hybridge"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EwsEmulator, bytes]]:
    ca = trustme.CA(organization_name="Contoso CLI CA")
    d = tmp_path_factory.mktemp("cli-ews")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    config = EmulatorConfig(
        accounts=(
            DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False),
            DirectoryAccount("room1@contoso.test", "room1", "r"),
            DirectoryAccount("ceo@contoso.test", "ceo", "c"),
        ),
        impersonation=(
            ImpersonationAssignment("H", "svc-hybridge", frozenset({"room1@contoso.test"})),
        ),
    )
    with EwsEmulator(config, cert_file=d / "cert.pem", key_file=d / "key.pem") as ews:
        yield ews, ca.cert_pem.bytes()


@pytest.fixture
def data_dir(tmp_path: Path, emulator: tuple[EwsEmulator, bytes]) -> Path:
    data = tmp_path / "connector"
    # The EWS CA in the platform trust store, as `hybridge trust add` would put it.
    with open_trust_store(data) as store:
        store.add_manual([CertificateSource("contoso.pem", emulator[1])], actor="test")
    return data


def _run(data: Path, *args: str, stdin: str = "") -> Any:
    return CliRunner().invoke(
        app, ["connector", "calendar", *args, "--data-dir", str(data)], input=stdin
    )


def _set(data: Path, url: str, *extra: str, stdin: str = PASSWORD + "\n") -> Any:
    return _run(
        data,
        "config", "set", "--name", "Contoso", "--ews-url", url, "--username", SVC,
        "--test-mailbox", "room1@contoso.test", "--password-stdin", "--json", *extra,
        stdin=stdin,
    )  # fmt: skip


def test_set_tests_then_saves_and_show_list_never_print_the_password(
    data_dir: Path, emulator: tuple[EwsEmulator, bytes]
) -> None:
    result = _set(data_dir, emulator[0].ews_url)
    assert result.exit_code == 0, result.output
    saved = json.loads(result.stdout)
    assert saved["saved"] and saved["test"]["code"] == "ok"
    config_id = saved["config"]["id"]
    shown = _run(data_dir, "config", "show", config_id, "--json")
    assert shown.exit_code == 0
    password = json.loads(shown.stdout)["password"]
    assert password["set"] and password["set_by"].startswith("cli:") and password["version"] == 1
    listed = _run(data_dir, "config", "list")
    assert listed.exit_code == 0 and "Contoso" in listed.stdout and "password set" in listed.stdout
    tested = _run(data_dir, "test", config_id, "--json")
    assert tested.exit_code == 0 and json.loads(tested.stdout)["code"] == "ok"
    for out in (result.output, shown.output, listed.output, tested.output):
        assert PASSWORD not in out


def test_set_with_a_failing_test_exits_1_and_saves_nothing(
    data_dir: Path, emulator: tuple[EwsEmulator, bytes]
) -> None:
    result = _set(data_dir, emulator[0].ews_url, stdin="wrong-" + PASSWORD + "\n")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["test"]["code"] == "unauthorized"
    assert json.loads(_run(data_dir, "config", "list", "--json").stdout) == {"configs": []}
    forced = _set(data_dir, emulator[0].ews_url, "--save-anyway", stdin="wrong-pw\n")
    assert forced.exit_code == 0
    body = json.loads(forced.stdout)
    assert body["saved_despite_failed_test"] is True
    tested = _run(data_dir, "test", body["config"]["id"])
    assert tested.exit_code == 1
    assert "connection test: unauthorized" in tested.stdout and "or has expired" in tested.stdout


def test_impersonation_denied_prints_the_powershell(
    data_dir: Path, emulator: tuple[EwsEmulator, bytes]
) -> None:
    result = _run(
        data_dir,
        "config", "set", "--name", "Contoso", "--ews-url", emulator[0].ews_url,
        "--username", SVC, "--test-mailbox", "ceo@contoso.test", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "connection test: impersonation_denied" in result.stdout
    assert "New-ManagementRoleAssignment" in result.stdout
    assert "not saved: the connection test failed" in result.stdout


def test_bad_input_exits_2_with_the_value(
    data_dir: Path, emulator: tuple[EwsEmulator, bytes]
) -> None:
    bad_user = _run(
        data_dir,
        "config", "set", "--name", "X", "--ews-url", emulator[0].ews_url,
        "--username", "nodomain", "--test-mailbox", "room1@contoso.test",
    )  # fmt: skip
    assert bad_user.exit_code == 2
    assert "'nodomain' must be DOMAIN\\user or user@domain" in bad_user.stderr
    insecure = _set(data_dir, emulator[0].ews_url, "--no-verify-tls")
    assert insecure.exit_code == 2 and "confirm_insecure" in insecure.stderr
    missing = _run(data_dir, "test", "f" * 32)
    assert missing.exit_code == 2 and "no Exchange configuration with id" in missing.stderr
    assert _run(data_dir, "link", "create", "nope").exit_code == 2


def test_link_create_prints_a_one_time_url(
    data_dir: Path, emulator: tuple[EwsEmulator, bytes]
) -> None:
    config_id = json.loads(_set(data_dir, emulator[0].ews_url).stdout)["config"]["id"]
    result = _run(
        data_dir, "link", "create", config_id, "--base-url", "https://conn.example:9443", "--json"
    )
    assert result.exit_code == 0, result.output
    link = json.loads(result.stdout)
    assert link["url"].startswith(f"https://conn.example:9443/credential-entry/{config_id}/")
    assert link["expires_at"]


def _graph_set(data: Path) -> Any:
    """A Graph configuration without a client secret: saved untested, no emulator needed."""
    return _run(
        data,
        "graph", "set", "--name", "Contoso Online", "--json",
        "--tenant-id", "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        "--client-id", "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c",
        "--test-mailbox", "alice@contoso.test",
    )  # fmt: skip


def test_graph_link_prints_a_one_time_url_that_opens(data_dir: Path) -> None:
    from hybridge.cli._calendar_common import open_graph

    saved = _graph_set(data_dir)
    assert saved.exit_code == 0, saved.output
    config_id = json.loads(saved.stdout)["config"]["id"]
    result = _run(
        data_dir, "graph", "link", "--id", config_id, "--base-url", "https://conn.example:9443",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link = json.loads(result.stdout)
    prefix = f"https://conn.example:9443/credential-entry/graph/{config_id}/"
    assert link["url"].startswith(prefix) and link["config_id"] == config_id
    assert link["expires_at"]
    # The token opens the Graph link of that configuration (and no EWS one).
    opened = open_graph(data_dir).links.open(config_id, link["url"].removeprefix(prefix))
    assert opened.link_id == link["link_id"]
    text = _run(data_dir, "graph", "link", "--id", config_id)
    assert text.exit_code == 0, text.output
    assert "send this link to the Exchange Online admin (works once, until" in text.stdout
    assert f"https://localhost:9443/credential-entry/graph/{config_id}/" in text.stdout


def test_graph_link_refuses_an_unknown_or_missing_id(data_dir: Path) -> None:
    missing = _run(data_dir, "graph", "link", "--id", "f" * 32)
    assert missing.exit_code == 2
    assert f"no Exchange Online configuration with id {'f' * 32!r}" in missing.stderr
    no_id = _run(data_dir, "graph", "link")
    assert no_id.exit_code == 2 and "--id" in no_id.stderr
