"""``EdgeServer`` set-up refusals: each says what is wrong before anything listens."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from certs import load_tlspki
from hybridge.edge.errors import EdgeSetupError
from hybridge.edge.server import EdgeServer
from hybridge.edge.settings import EdgeSettings
from hybridge.edge.zones import Zone, ZoneKind

ZONES = [Zone("cloud", ZoneKind.DNS, "callservice.example.test")]


def identity(tmp_path: Path) -> tuple[EdgeSettings, list[object]]:
    pki = load_tlspki()
    root = pki.make_ca("Unit Root")
    leaf = pki.make_leaf(root, dns=["edge.example.test"])
    (tmp_path / "edge.pem").write_bytes(leaf.pem)
    (tmp_path / "edge.key").write_bytes(leaf.key_pem())
    settings = EdgeSettings(
        cert_file=tmp_path / "edge.pem", key_file=tmp_path / "edge.key", cloud_port=0,
        traversal_port=0,
    )  # fmt: skip
    return settings, [root.cert]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("header_timeout", 0, "header_timeout must be a positive number"),
        ("handshake_timeout", -1.0, "handshake_timeout must be a positive number"),
        ("cloud_port", 70000, "cloud_port 70000 is not a TCP port"),
        ("max_connections", 0, "max_connections must be a positive integer, not 0"),
    ],
)
def test_settings_are_validated(field: str, value: float, fragment: str) -> None:
    with pytest.raises(EdgeSetupError, match=fragment):
        EdgeSettings(cert_file=Path("c"), key_file=Path("k"), **{field: value})  # type: ignore[arg-type]


def test_no_zone_means_no_start(tmp_path: Path) -> None:
    settings, anchors = identity(tmp_path)
    server = EdgeServer(settings, [], anchors)  # type: ignore[arg-type]
    with pytest.raises(EdgeSetupError, match="no zone is configured"):
        asyncio.run(server.start())


def test_unusable_key_means_no_start(tmp_path: Path) -> None:
    settings, anchors = identity(tmp_path)
    (tmp_path / "edge.key").write_text("not a key")
    with pytest.raises(EdgeSetupError, match="cannot set up TLS"):
        asyncio.run(EdgeServer(settings, ZONES, anchors).start())  # type: ignore[arg-type]


def test_busy_port_means_no_start_and_the_twin_starts(tmp_path: Path) -> None:
    settings, anchors = identity(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        taken = EdgeSettings(
            cert_file=settings.cert_file, key_file=settings.key_file, cloud_port=port,
            traversal_port=0,
        )  # fmt: skip

        async def attempt(s: EdgeSettings) -> dict[object, int]:
            server = EdgeServer(s, ZONES, anchors)  # type: ignore[arg-type]
            await server.start()
            ports = dict(server.ports)
            await server.close()
            return ports

        with pytest.raises(EdgeSetupError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(attempt(taken))
        assert all(p > 0 for p in asyncio.run(attempt(settings)).values())
