"""The Graph connection test against the emulator: one result code per failure."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme

from hybridge.calendar.graph import GraphSettings
from hybridge.calendar.graph.check import check_connection
from hybridge.testing.graph import CALENDARS_READWRITE, RoleAssignment, ThrottlePolicy
from hybridge.vault.secret import Secret


def test_success(graph_harness: Any) -> None:
    result = check_connection(graph_harness.backend.settings, graph_harness.context)
    assert result.ok and result.code == "ok"


def test_wrong_secret(graph_harness: Any) -> None:
    settings = replace(graph_harness.backend.settings, client_secret=Secret.from_text("nope"))
    result = check_connection(settings, graph_harness.context)
    assert result.code == "credentials_rejected" and "AADSTS7000215" in result.message
    assert "Certificates & secrets" in result.fix


def test_mailbox_outside_the_rbac_scope(graph_harness: Any) -> None:
    emulator, settings = graph_harness.emulator, graph_harness.backend.settings
    emulator.revoke(settings.client_id)
    emulator.grant(
        RoleAssignment(settings.client_id, CALENDARS_READWRITE, frozenset({"bob@contoso.test"}))
    )
    result = check_connection(settings, graph_harness.context)
    assert result.code == "access_denied" and "ErrorAccessDenied" in result.message
    assert "Test-ServicePrincipalAuthorization" in result.fix and "alice@contoso.test" in result.fix


def test_unknown_test_mailbox(graph_harness: Any) -> None:
    settings = replace(graph_harness.backend.settings, test_mailbox="ghost@contoso.test")
    result = check_connection(settings, graph_harness.context)
    assert result.code == "mailbox_not_found" and "ghost@contoso.test" in result.message


def test_throttled(graph_harness: Any) -> None:
    graph_harness.emulator.set_throttle("alice@contoso.test", ThrottlePolicy(retry_after=12))
    result = check_connection(graph_harness.backend.settings, graph_harness.context)
    assert result.code == "throttled" and result.retry_after_seconds == 12


def test_untrusted_certificate(graph_harness: Any, calendar_pki: tuple[Path, Path, Path]) -> None:
    # The connector trusts another CA only: the emulator's certificate is refused.
    context = ssl.create_default_context(cafile=None)
    trustme.CA(organization_name="Some other CA").configure_trust(context)
    result = check_connection(graph_harness.backend.settings, context)
    assert result.code == "tls_untrusted" and "not trusted" in result.message
    assert graph_harness.emulator.requests == []


def _run_emulator(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hybridge.testing.graph", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_emulator_as_a_process_passes_the_connection_test(
    tmp_path: Path, calendar_pki: tuple[Path, Path, Path], client_ssl_context: ssl.SSLContext
) -> None:
    cert, key, _ = calendar_pki
    tenant, client = "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f", "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"
    (tmp_path / "tenant.json").write_text(
        json.dumps(
            {
                "tenant_id": tenant,
                "apps": [{"client_id": client, "secrets": ["pw-1"]}],
                "mailboxes": ["alice@contoso.test"],
                "assignments": [
                    {"client_id": client, "role": "Application Calendars.ReadWrite", "scope": None}
                ],
            }
        )
    )
    proc = _run_emulator(
        ["--cert", str(cert), "--key", str(key), "--config", str(tmp_path / "tenant.json")]
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the emulator prints it once bound
        assert line.startswith("Graph emulator listening on https://127.0.0.1:"), line
        base = line.split()[-1]
        settings = GraphSettings(
            tenant_id=tenant,
            client_id=client,
            test_mailbox="alice@contoso.test",
            client_secret=Secret.from_text("pw-1"),
            authority_host=base,
            graph_url=f"{base}/v1.0",
        )
        assert check_connection(settings, client_ssl_context).ok
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_emulator_process_refuses_a_bad_configuration(
    tmp_path: Path, calendar_pki: tuple[Path, Path, Path]
) -> None:
    cert, key, _ = calendar_pki
    (tmp_path / "tenant.json").write_text(json.dumps({"tenant_id": "contoso", "apps": []}))
    proc = _run_emulator(
        ["--cert", str(cert), "--key", str(key), "--config", str(tmp_path / "tenant.json")]
    )
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "error:" in err and "mailboxes" in err
