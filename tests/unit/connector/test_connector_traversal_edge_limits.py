"""The header timeout and the codec's limits on the traversal connection to the edge.

The "edge" here is a real TLS server on loopback (certificate for ``edge.example.test``
from a test root in the connector's trust store) that admits the connector, answers its
first keep-alive and then misbehaves; the connector must close and re-dial, saying why.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from certs import load_tlspki
from hybridge.connector.credentials import CredentialStore
from hybridge.connector.traversal_config import (
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.connector.traversal_link import TraversalSettings
from hybridge.connector.traversal_service import TraversalClient
from hybridge.core.control import Backoff
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import CertificateSource, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.vault import Secret, Vault, configured_source

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _run_against_edge(tmp_path: Path, behaviour: Behaviour) -> TraversalClient:
    pki: Any = load_tlspki()
    now = dt.datetime.now(dt.UTC)  # the client validates at the real current time
    window = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=1)}
    root = pki.make_ca("Edge Limits Root", **window)
    edge = pki.make_leaf(root, dns=["edge.example.test"], **window)
    connector = pki.make_leaf(root, dns=["connector.example.test"], **window)
    (tmp_path / "edge.pem").write_bytes(edge.pem)
    (tmp_path / "edge.key").write_bytes(edge.key_pem())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "edge.pem", tmp_path / "edge.key")
    trust = open_trust_store(tmp_path)
    trust.add_manual([CertificateSource("root.pem", root.pem)], actor="test")
    database = open_database(sqlite_url(tmp_path / DATABASE_NAME), "node")
    vault = Vault.open(database, configured_source(tmp_path, environ={}), create=True)
    store = TraversalStore(database, vault)
    client = TraversalClient(
        store,
        trust,
        CredentialStore(database, vault),
        host="connector.example.test",
        settings=TraversalSettings(
            backoff=Backoff(5, 5), config_poll=0.05, header_timeout=0.5, max_message_size=2048
        ),
    )

    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)  # the first CRLFCRLF keep-alive
            writer.write(b"\r\n")  # pong: admitted
            await behaviour(reader, writer)
            await asyncio.sleep(30)

        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server)
        port = listener.sockets[0].getsockname()[1]
        store.set(
            TraversalConfig(
                edge=EdgeAddress("127.0.0.1", port),
                edge_name="edge.example.test",
                premises=PremisesServer.parse("sip:127.0.0.1:9;transport=tcp"),
                keepalive_interval=60,
                certificate_pem=connector.pem.decode(),
            ),
            key=Secret(connector.key_pem()),
            actor="test",
        )
        client.start()
        try:
            async with asyncio.timeout(15):
                while client.status.redials < 1:
                    await asyncio.sleep(0.02)
        finally:
            await client.stop()
            listener.close()

    try:
        asyncio.run(scenario())
    finally:
        trust.close()
        database.dispose()
    return client


def test_an_edge_that_stalls_mid_message_is_closed_and_redialled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"INVITE sip:bob@premises.example.test SIP/2.0\r\nVia: SIP/2.0/TLS e")

    caplog.set_level(logging.INFO, logger="hybridge.connector.traversal")
    client = _run_against_edge(tmp_path, stall)
    assert (client.status.last_error or "").startswith(
        "the edge left a message incomplete for 0.5s"
    ), client.status.last_error
    assert "[reason header_timeout]" in caplog.text


def test_an_edge_message_over_the_limit_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"INVITE sip:bob@premises.example.test SIP/2.0\r\nX: " + b"a" * 4000)

    caplog.set_level(logging.INFO, logger="hybridge.connector.traversal")
    client = _run_against_edge(tmp_path, flood)
    error = client.status.last_error or ""
    assert error.startswith("the edge sent a message we cannot frame:"), error
    assert error.endswith("; connection closed")
    assert "[reason protocol_error]" in caplog.text
