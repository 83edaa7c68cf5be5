"""Interoperability with a foreign TLS stack: ``openssl s_server`` and ``openssl s_client``.

Our probe judges the chain ``s_server`` sends; our server context and post-handshake
check accept ``s_client`` presenting a serverAuth-only certificate (the cloud's case).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import LoopbackServer, write_identity
from hybridge.core.tlsverify import Accepted, NamePolicy, PeerRole, RefusalReason, Refused
from hybridge.tls import check_peer, probe, server_context

OPENSSL = shutil.which("openssl")
CLOUD = "callservice.example.com"


@pytest.fixture
def pki_files(pki: ModuleType, tmp_path: Path) -> dict[str, Any]:
    if OPENSSL is None:
        pytest.fail("openssl is not installed; scripts/install-system-deps installs it")
    now = dt.datetime.now(dt.UTC)
    window = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=1)}
    root = pki.make_ca("Interop Root", **window)
    inter = pki.make_ca("Interop Intermediate", issuer=root, **window)
    server_leaf = pki.make_leaf(
        inter, uris=[f"sip:{CLOUD}"], eku=[ExtendedKeyUsageOID.SERVER_AUTH], **window
    )
    client_leaf = pki.make_leaf(inter, dns=[CLOUD], eku=[ExtendedKeyUsageOID.SERVER_AUTH], **window)
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(root.pem)
    inter_file = tmp_path / "inter.pem"
    inter_file.write_bytes(inter.pem)
    leaf_file = tmp_path / "server-leaf.pem"
    leaf_file.write_bytes(server_leaf.pem)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(server_leaf.key_pem())
    return {
        "root": root,
        "root_file": root_file,
        "inter_file": inter_file,
        "server_leaf_file": leaf_file,
        "server_key": key_file,
        "server_identity": write_identity(tmp_path, "edge", server_leaf, inter),
        "client": write_identity(tmp_path, "cloud", client_leaf, inter),
    }


@pytest.fixture
def s_server(pki_files: dict[str, Any]) -> Iterator[int]:
    assert OPENSSL is not None
    process = subprocess.Popen(
        [
            OPENSSL,
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            str(pki_files["server_leaf_file"]),
            "-key",
            str(pki_files["server_key"]),
            "-cert_chain",
            str(pki_files["inter_file"]),
            "-naccept",
            "5",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        assert process.stdout is not None
        # s_server prints "ACCEPT 127.0.0.1:<port>" once listening. Read whole lines (select()
        # would miss a line already in Python's buffer); a timer kills a server that has not
        # said it within 10 s, which ends the loop with EOF.
        watchdog = threading.Timer(10, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:
                if line.startswith("ACCEPT"):
                    port = int(line.rsplit(":", 1)[1])
                    break
        finally:
            watchdog.cancel()
        assert port is not None, "openssl s_server did not start"
        yield port
    finally:
        process.kill()
        process.wait(timeout=5)


def test_probe_judges_openssl_s_server_chain(pki_files: dict[str, Any], s_server: int) -> None:
    result = probe(
        "127.0.0.1",
        s_server,
        names=NamePolicy(CLOUD),
        anchors=[pki_files["root"].cert],
        timeout=5,
    )
    assert len(result.chain) == 2
    assert isinstance(result.verdict, Accepted)
    assert result.verdict.source.value == "san_uri"


def test_probe_refuses_openssl_s_server_under_another_name(
    pki_files: dict[str, Any], s_server: int
) -> None:
    result = probe(
        "127.0.0.1",
        s_server,
        names=NamePolicy("other.example.com"),
        anchors=[pki_files["root"].cert],
        timeout=5,
    )
    assert isinstance(result.verdict, Refused)
    assert result.verdict.reason is RefusalReason.NAME_MISMATCH
    assert f"uri:sip:{CLOUD}" in result.verdict.explanation


def test_openssl_s_client_with_server_auth_only_certificate_is_accepted(
    pki_files: dict[str, Any], serve: Callable[..., LoopbackServer]
) -> None:
    assert OPENSSL is not None
    identity = pki_files["server_identity"]
    context = server_context(
        [pki_files["root"].cert], cert_file=identity.chain, key_file=identity.key
    )

    def on_connection(tls: Any) -> Any:
        return check_peer(
            tls, names=NamePolicy(CLOUD), anchors=[pki_files["root"].cert], role=PeerRole.CLIENT
        )

    server = serve(context, on_connection)
    client = pki_files["client"]
    done = subprocess.run(
        [
            OPENSSL,
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-cert",
            str(client.chain),
            "-key",
            str(client.key),
            "-cert_chain",
            str(pki_files["inter_file"]),
            "-CAfile",
            str(pki_files["root_file"]),
            "-verify_return_error",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Verify return code: 0 (ok)" in done.stdout, done.stdout + done.stderr
    verdict = server.last().verdict
    assert isinstance(verdict, Accepted), verdict
    assert verdict.identity == CLOUD
