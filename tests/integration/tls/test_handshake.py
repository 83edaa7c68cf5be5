"""Real TLS on 127.0.0.1: contexts from anchors, the post-handshake check, and its twins.

Every decision taken on a live connection is compared with ``verify_peer`` run directly on
the same certificates: the wire and the core must agree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import LoopbackServer, write_identity
from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    NamePolicy,
    PeerRole,
    RefusalReason,
    Refused,
    verify_peer,
)
from hybridge.tls import (
    PeerRefused,
    check_peer,
    client_context,
    require_peer,
    server_context,
)

CLOUD = "callservice.example.com"


class Pki:
    """A root, an intermediate and leaves valid around the real current time."""

    def __init__(self, pki: ModuleType, tmp: Path) -> None:
        self.mod = pki
        self.tmp = tmp
        now = dt.datetime.now(dt.UTC)
        self.window = {
            "not_before": now - dt.timedelta(days=1),
            "not_after": now + dt.timedelta(days=1),
        }
        self.root = pki.make_ca("Loopback Root", **self.window)
        self.inter = pki.make_ca("Loopback Intermediate", issuer=self.root, **self.window)

    def leaf(self, name: str, eku: list[x509.ObjectIdentifier] | None, **extra: Any) -> Any:
        return self.mod.make_leaf(self.inter, dns=[name], eku=eku, **{**self.window, **extra})

    def files(self, stem: str, leaf: Any) -> Any:
        return write_identity(self.tmp, stem, leaf, self.inter)


@pytest.fixture
def world(pki: ModuleType, tmp_path: Path) -> Pki:
    return Pki(pki, tmp_path)


def core_verdict(world: Pki, leaf: Any, name: str, role: PeerRole, anchors: Any = None) -> Any:
    return verify_peer(
        leaf.cert,
        [world.inter.cert],
        anchors=AnchorSet(tuple(anchors or [world.root.cert])),
        names=NamePolicy(name),
        role=role,
        at=dt.datetime.now(dt.UTC),
    )


def connect(context: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="localhost")


def server_checking(world: Pki, name: str) -> Callable[[ssl.SSLSocket], Any]:
    def on_connection(tls: ssl.SSLSocket) -> Any:
        return check_peer(
            tls, names=NamePolicy(name), anchors=[world.root.cert], role=PeerRole.CLIENT
        )

    return on_connection


def start_edge(
    world: Pki, serve: Callable[..., LoopbackServer], server_leaf: Any
) -> LoopbackServer:
    files = world.files("server", server_leaf)
    context = server_context([world.root.cert], cert_file=files.chain, key_file=files.key)
    return serve(context, server_checking(world, CLOUD))


def test_mutual_tls_with_server_auth_only_client_is_accepted_like_the_core(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    server_leaf = world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH])
    client_leaf = world.leaf(CLOUD, [ExtendedKeyUsageOID.SERVER_AUTH])  # no clientAuth
    server = start_edge(world, serve, server_leaf)
    files = world.files("client", client_leaf)
    context = client_context([world.root.cert], cert_file=files.chain, key_file=files.key)
    with connect(context, server.port) as tls:
        ours = check_peer(
            tls, names=NamePolicy("localhost"), anchors=[world.root.cert], role=PeerRole.SERVER
        )
        assert tls.recv(2) == b"ok"
    assert isinstance(ours, Accepted)
    assert ours == core_verdict(world, server_leaf, "localhost", PeerRole.SERVER)
    theirs = server.last().verdict
    assert isinstance(theirs, Accepted)
    assert theirs.identity == CLOUD
    # The server read the leaf *and* the intermediate the client sent.
    assert theirs == core_verdict(world, client_leaf, CLOUD, PeerRole.CLIENT)
    assert len(theirs.chain_sha256) == 3


def test_server_auth_only_client_fails_with_openssls_default_purpose(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    # Why server_context relaxes the purpose: without it OpenSSL refuses the cloud's cert.
    server_leaf = world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH])
    files = world.files("server", server_leaf)
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    plain.load_cert_chain(files.chain, files.key)
    plain.verify_mode = ssl.CERT_REQUIRED
    plain.load_verify_locations(cadata=world.root.pem.decode())
    server = serve(plain, server_checking(world, CLOUD))
    client_files = world.files("client", world.leaf(CLOUD, [ExtendedKeyUsageOID.SERVER_AUTH]))
    context = client_context(
        [world.root.cert], cert_file=client_files.chain, key_file=client_files.key
    )
    with pytest.raises((ssl.SSLError, OSError)), connect(context, server.port) as tls:
        tls.recv(2)
    error = server.last().error
    assert isinstance(error, ssl.SSLError)
    assert "unsuitable certificate purpose" in str(error)


def test_code_signing_client_passes_openssl_but_our_check_refuses_it(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    server = start_edge(world, serve, world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH]))
    client_leaf = world.leaf(CLOUD, [ExtendedKeyUsageOID.CODE_SIGNING])
    files = world.files("client", client_leaf)
    context = client_context([world.root.cert], cert_file=files.chain, key_file=files.key)
    with connect(context, server.port) as tls:
        assert tls.recv(2) == b"no"
    verdict = server.last().verdict
    assert isinstance(verdict, Refused)
    assert verdict.reason is RefusalReason.BAD_KEY_USAGE
    assert verdict == core_verdict(world, client_leaf, CLOUD, PeerRole.CLIENT)


def test_no_client_certificate_fails_the_handshake(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    server = start_edge(world, serve, world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH]))
    context = client_context([world.root.cert])
    with pytest.raises((ssl.SSLError, OSError)), connect(context, server.port) as tls:
        tls.recv(2)
    error = server.last().error
    assert isinstance(error, ssl.SSLError)
    assert "peer did not return a certificate" in str(error)


def test_wrong_ca_fails_the_handshake_and_the_core_agrees(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    server_leaf = world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH])
    server = start_edge(world, serve, server_leaf)
    other_root = world.mod.make_ca("Loopback Root", **world.window)  # same name, other key
    files = world.files("client", world.leaf(CLOUD, [ExtendedKeyUsageOID.SERVER_AUTH]))
    context = client_context([other_root.cert], cert_file=files.chain, key_file=files.key)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        connect(context, server.port)
    assert "certificate verify failed" in str(info.value)
    verdict = core_verdict(
        world, server_leaf, "localhost", PeerRole.SERVER, anchors=[other_root.cert]
    )
    assert isinstance(verdict, Refused)
    assert verdict.reason is RefusalReason.UNTRUSTED_ISSUER


def test_wrong_name_completes_the_handshake_and_is_refused_after_it(
    world: Pki, serve: Callable[..., LoopbackServer]
) -> None:
    server_leaf = world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH])
    server = start_edge(world, serve, server_leaf)
    files = world.files("client", world.leaf(CLOUD, [ExtendedKeyUsageOID.SERVER_AUTH]))
    context = client_context([world.root.cert], cert_file=files.chain, key_file=files.key)
    with connect(context, server.port) as tls:
        verdict = check_peer(
            tls,
            names=NamePolicy("other.example.com"),
            anchors=[world.root.cert],
            role=PeerRole.SERVER,
        )
        with pytest.raises(PeerRefused) as info:
            require_peer(
                tls,
                names=NamePolicy("other.example.com"),
                anchors=[world.root.cert],
                role=PeerRole.SERVER,
            )
    assert isinstance(verdict, Refused)
    assert verdict.reason is RefusalReason.NAME_MISMATCH
    assert verdict == core_verdict(world, server_leaf, "other.example.com", PeerRole.SERVER)
    assert info.value.exit_code == 1
    assert "name_mismatch" in str(info.value)


def test_asyncio_server_checks_the_ssl_object(world: Pki) -> None:
    server_leaf = world.leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH])
    client_leaf = world.leaf(CLOUD, [ExtendedKeyUsageOID.CLIENT_AUTH])
    server_files = world.files("server", server_leaf)
    client_files = world.files("client", client_leaf)
    verdicts: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        verdicts.append(
            check_peer(
                ssl_object, names=NamePolicy(CLOUD), anchors=[world.root.cert], role=PeerRole.CLIENT
            )
        )
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        context = server_context(
            [world.root.cert], cert_file=server_files.chain, key_file=server_files.key
        )
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = client_context(
                [world.root.cert], cert_file=client_files.chain, key_file=client_files.key
            )
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost"),
                5,
            )
            data = await asyncio.wait_for(reader.read(2), 5)
            writer.close()
            return data

    assert asyncio.run(main()) == b"ok"
    assert verdicts == [core_verdict(world, client_leaf, CLOUD, PeerRole.CLIENT)]
    assert isinstance(verdicts[0], Accepted)
