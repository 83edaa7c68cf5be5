"""``probe`` and ``hybridge tls probe`` against a real mutual-TLS server on loopback."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from conftest import LoopbackServer, write_identity
from hybridge.cli.main import app
from hybridge.core.tlsverify import Accepted, NamePolicy, PeerRole, RefusalReason, Refused
from hybridge.tls import (
    TlsConnectError,
    TlsSetupError,
    check_peer,
    parse_target,
    probe,
    server_context,
)

CLOUD = "callservice.example.com"


@pytest.fixture
def edge(pki: ModuleType, tmp_path: Path, serve: Callable[..., LoopbackServer]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    window = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=1)}
    root = pki.make_ca("Probe Root", **window)
    inter = pki.make_ca("Probe Intermediate", issuer=root, **window)
    server_leaf = pki.make_leaf(
        inter, dns=["localhost"], ips=["127.0.0.1"], eku=[ExtendedKeyUsageOID.SERVER_AUTH], **window
    )
    client_leaf = pki.make_leaf(inter, dns=[CLOUD], eku=[ExtendedKeyUsageOID.SERVER_AUTH], **window)
    server_files = write_identity(tmp_path, "server", server_leaf, inter)
    client_files = write_identity(tmp_path, "client", client_leaf, inter)
    ca_file = tmp_path / "anchors.pem"
    ca_file.write_bytes(root.pem)
    context = server_context([root.cert], cert_file=server_files.chain, key_file=server_files.key)

    def on_connection(tls: Any) -> Any:
        return check_peer(tls, names=NamePolicy(CLOUD), anchors=[root.cert], role=PeerRole.CLIENT)

    server = serve(context, on_connection)
    return {
        "root": root,
        "inter": inter,
        "server": server,
        "client": client_files,
        "ca_file": ca_file,
        "server_leaf": server_leaf,
    }


def test_probe_shows_the_chain_and_accepts(edge: dict[str, Any]) -> None:
    result = probe(
        "127.0.0.1",
        edge["server"].port,
        names=NamePolicy("localhost"),
        anchors=[edge["root"].cert],
        client_cert=edge["client"].chain,
        client_key=edge["client"].key,
        timeout=5,
    )
    assert [c.subject for c in result.chain] == [
        edge["server_leaf"].cert.subject,
        edge["inter"].cert.subject,
    ]
    assert isinstance(result.verdict, Accepted)
    assert result.verdict.identity == "localhost"
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")


def test_probe_by_ip_matches_the_ip_san(edge: dict[str, Any]) -> None:
    result = probe(
        "127.0.0.1",
        edge["server"].port,
        names=NamePolicy("127.0.0.1"),
        anchors=[edge["root"].cert],
        client_cert=edge["client"].chain,
        client_key=edge["client"].key,
        timeout=5,
    )
    assert isinstance(result.verdict, Accepted)
    assert result.verdict.source.value == "san_ip"


def test_probe_wrong_name_is_refused(edge: dict[str, Any]) -> None:
    result = probe(
        "127.0.0.1",
        edge["server"].port,
        names=NamePolicy(CLOUD),
        anchors=[edge["root"].cert],
        client_cert=edge["client"].chain,
        client_key=edge["client"].key,
        timeout=5,
    )
    assert isinstance(result.verdict, Refused)
    assert result.verdict.reason is RefusalReason.NAME_MISMATCH
    assert "dns:localhost" in result.verdict.explanation


def test_probe_to_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TlsConnectError, match=f"127.0.0.1:{port} failed"):
        probe("127.0.0.1", port, names=NamePolicy("localhost"), anchors=[], timeout=2)


def test_probe_needs_both_client_cert_and_key(edge: dict[str, Any]) -> None:
    with pytest.raises(TlsSetupError, match="both --client-cert and --client-key"):
        probe(
            "127.0.0.1",
            edge["server"].port,
            names=NamePolicy("localhost"),
            anchors=[edge["root"].cert],
            client_cert=edge["client"].chain,
        )


@pytest.mark.parametrize(
    ("target", "expected"),
    [("localhost:5062", ("localhost", 5062)), ("[::1]:5061", ("::1", 5061))],
)
def test_parse_target(target: str, expected: tuple[str, int]) -> None:
    assert parse_target(target) == expected


@pytest.mark.parametrize("target", ["localhost", "localhost:", ":5062", "h:0", "h:70000", "h:x"])
def test_parse_target_refuses_bad_targets(target: str) -> None:
    with pytest.raises(TlsSetupError, match="is not HOST:PORT"):
        parse_target(target)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybridge", "tls", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_probe_accepts_and_prints_the_chain(edge: dict[str, Any]) -> None:
    result = run_cli(
        f"127.0.0.1:{edge['server'].port}",
        "--name",
        "localhost",
        "--ca-file",
        str(edge["ca_file"]),
        "--client-cert",
        str(edge["client"].chain),
        "--client-key",
        str(edge["client"].key),
        "--timeout",
        "5",
    )
    assert result.returncode == 0, result.stderr
    assert "chain sent by the peer:" in result.stdout
    assert "[1] CN=Probe Intermediate" in result.stdout
    assert "accepted: localhost (san_dns)" in result.stdout
    # The server accepted us too (serverAuth-only client certificate).
    assert isinstance(edge["server"].last().verdict, Accepted)


def test_cli_probe_wrong_name_exits_one_with_the_reason(edge: dict[str, Any]) -> None:
    # In-process, the same Typer app the entry point runs (one subprocess test is enough).
    result = CliRunner().invoke(
        app,
        [
            "tls",
            "probe",
            f"127.0.0.1:{edge['server'].port}",
            "--name",
            "cloud.example.net",
            "--ca-file",
            str(edge["ca_file"]),
            "--client-cert",
            str(edge["client"].chain),
            "--client-key",
            str(edge["client"].key),
            "--json",
        ],
    )
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["reason"] == "name_mismatch"
    assert document["accepted"] is False
    assert len(document["chain"]) == 2


def test_cli_probe_bad_target_exits_two() -> None:
    # In-process (same Typer app as the entry point): no need for a third interpreter start.
    result = CliRunner().invoke(app, ["tls", "probe", "nowhere", "--name", "localhost"])
    assert result.exit_code == 2
    assert "is not HOST:PORT" in result.stderr
