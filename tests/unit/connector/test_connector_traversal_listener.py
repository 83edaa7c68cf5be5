"""The premises listener: its settings, their row, and admission and limits on real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from hybridge.connector.traversal_config import (
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
    traversal_table,
)
from hybridge.connector.traversal_errors import (
    ListenerUnavailable,
    MessageTimedOut,
    TraversalConfigInvalid,
)
from hybridge.connector.traversal_link import Link, TraversalSettings
from hybridge.connector.traversal_listener import PremisesAcceptor, allowed_networks
from hybridge.connector.traversal_listener_config import PremisesListener, listener_from_fields
from hybridge.connector.traversal_relay import Side
from hybridge.connector.traversal_views import config_from
from hybridge.core.sip import BodyTooLargeError, Request
from hybridge.storage.db import alembic_config, open_database, sqlite_url, upgrade
from hybridge.vault import Vault, configured_source

PBX = PremisesServer.parse("sip:127.0.0.1:5060;transport=tcp", "pbx.example.test")

# -- the value --------------------------------------------------------------------------------


def test_a_listener_parses_with_defaults() -> None:
    # Parsed only, never bound: the wildcard address is what a real PBX trunk would use.
    listener = PremisesListener.parse("0.0.0.0", "tls", "192.0.2.10, 198.51.100.0/28")  # noqa: S104
    assert (listener.host, listener.port, listener.transport) == ("0.0.0.0", 5061, "tls")  # noqa: S104
    assert listener.allow == ("192.0.2.10/32", "198.51.100.0/28")
    assert listener.wildcard and str(PremisesListener.parse("[::1]:5070")) == "[::1]:5070"


@pytest.mark.parametrize(
    ("address", "transport", "allow", "require", "message"),
    [
        ("pbx.example.test:5060", "tcp", None, False,
         "listener address 'pbx.example.test' is not an IP address"),
        ("127.0.0.1:0", "tcp", None, False, "listener port 0 is not 1..65535"),
        ("127.0.0.1:5060", "udp", None, False,
         "listener transport 'udp' is not supported; use 'tcp' or 'tls'"),
        ("127.0.0.1:5060", "tcp", "192.0.2.300", False,
         "listener allow entry '192.0.2.300' is not an IP address or network"),
        ("127.0.0.1:5060", "tcp", None, True,
         "client certificates can be required only on a TLS listener"),
    ],
)  # fmt: skip
def test_a_bad_listener_is_refused_naming_the_field(
    address: str, transport: str, allow: str | None, require: bool, message: str
) -> None:
    with pytest.raises(TraversalConfigInvalid) as caught:
        PremisesListener.parse(address, transport, allow, require_client_cert=require)
    assert str(caught.value).startswith(message)


def test_listener_options_without_an_address_are_refused() -> None:
    assert listener_from_fields("", "", "", False) is None
    with pytest.raises(TraversalConfigInvalid, match="listener options were given without"):
        listener_from_fields(None, "tls")


def test_the_api_fields_build_the_listener() -> None:
    config, _ = config_from(
        {
            "edge": "edge.example.test",
            "edge_name": "edge.example.test",
            "premises": "sip:127.0.0.1;transport=tls",
            "listen": "127.0.0.1:5071",
            "listen_transport": "tls",
            "listen_allow": "127.0.0.1",
            "listen_require_client_cert": True,
        }
    )
    assert config.listener == PremisesListener("127.0.0.1", 5071, "tls", ("127.0.0.1",), True)
    with pytest.raises(TraversalConfigInvalid, match="must be true or false"):
        config_from({"listen_require_client_cert": 3})


# -- the row (migration 0009) ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraversalStore]:
    database = open_database(sqlite_url(tmp_path / "node.db"), "node")
    vault = Vault.open(database, configured_source(tmp_path, environ={}), create=True)
    yield TraversalStore(database, vault)
    database.dispose()


def test_the_listener_is_stored_and_read_back(store: TraversalStore) -> None:
    listener = PremisesListener("::", 5061, "tls", ("2001:db8::/64",), True)
    config = TraversalConfig(
        edge=EdgeAddress.parse("edge.example.test"),
        edge_name="edge.example.test",
        premises=PBX,
        listener=listener,
    )
    store.set(config, key=None, actor="test")
    record = store.get()
    assert record is not None and record.config == config
    assert record.public_view()["listener"] == {
        "address": "[::]:5061",
        "transport": "tls",
        "allow": ["2001:db8::/64"],
        "require_client_cert": True,
    }
    store.set(
        TraversalConfig(config.edge, config.edge_name, PBX), key=None, actor="test"
    )  # and removed again
    again = store.get()
    assert again is not None and again.config.listener is None


def test_migration_0009_matches_the_table_and_downgrades(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node", "0009_traversal_listener")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("connector_traversal")}
    assert columns == set(traversal_table.c.keys())
    with engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
        # The database refuses what the value refuses too (a third transport).
        connection.execute(
            sa.text(
                "INSERT INTO connector_traversal (id, edge_host, edge_port, edge_name, "
                "premises_uri, premises_name, keepalive_interval, updated_at, updated_by, "
                "listen_host, listen_port, listen_transport) VALUES (1, 'e', 7001, 'e', "
                "'sip:p', 'p', 30, '2026-11-27', 't', '127.0.0.1', 5060, 'udp')"
            )
        )
    cfg = alembic_config("node")
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0008_calendar_link")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("connector_traversal")}
    assert not any(c.startswith("listen_") for c in columns)
    engine.dispose()


# -- admission and limits on real sockets -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _serve(
    allow: str, settings: TraversalSettings
) -> tuple[PremisesAcceptor, asyncio.Queue[Link]]:
    listener = PremisesListener.parse(f"127.0.0.1:{_free_port()}", "tcp", allow)
    links: asyncio.Queue[Link] = asyncio.Queue()

    async def on_link(link: Link) -> None:
        await links.put(link)
        await asyncio.sleep(30)  # hold it open, as the relay would

    acceptor = PremisesAcceptor(
        listener,
        PBX,
        context=None,
        anchors=(),
        allowed=await allowed_networks(listener, PBX),
        settings=settings,
        on_link=on_link,
    )
    await acceptor.start()
    return acceptor, links


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionError:
        return True


def test_an_address_outside_the_allow_list_is_closed_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        acceptor, links = await _serve("192.0.2.0/24", TraversalSettings())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", acceptor.listener.port)
            writer.write(b"OPTIONS sip:x SIP/2.0\r\n")
            assert await _closed(reader)
            assert links.empty()
            writer.close()
        finally:
            await acceptor.close()

    with caplog.at_level(logging.WARNING, "hybridge.connector.traversal"):
        asyncio.run(scenario())
    assert "127.0.0.1 is not in the allow-list (192.0.2.0/24) [reason address_not_allowed]" in (
        caplog.text
    )


def test_the_default_allow_list_is_the_premises_servers_address() -> None:
    async def scenario() -> None:
        acceptor, links = await _serve("", TraversalSettings())
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", acceptor.listener.port)
            link = await asyncio.wait_for(links.get(), 5)
            assert (link.side, link.conn_id) == (Side.PREMISES, 1)
            writer.close()
        finally:
            await acceptor.close()

    asyncio.run(scenario())


def test_connections_past_the_bound_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        acceptor, links = await _serve("127.0.0.1", TraversalSettings(max_premises_connections=1))
        try:
            _, first = await asyncio.open_connection("127.0.0.1", acceptor.listener.port)
            await asyncio.wait_for(links.get(), 5)
            reader, second = await asyncio.open_connection("127.0.0.1", acceptor.listener.port)
            assert await _closed(reader)
            first.close()
            second.close()
        finally:
            await acceptor.close()

    with caplog.at_level(logging.WARNING, "hybridge.connector.traversal"):
        asyncio.run(scenario())
    assert "1 connections are open [reason too_many_connections]" in caplog.text


def test_a_slow_sender_times_out_and_a_complete_message_does_not() -> None:
    # The header timeout as ``Link.receive`` applies it on every connection (the edge's too).
    async def scenario() -> None:
        acceptor, links = await _serve("127.0.0.1", TraversalSettings())
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", acceptor.listener.port)
            link = await asyncio.wait_for(links.get(), 5)
            message = (
                b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n"
                b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
                b"Content-Length: 0\r\n\r\n"
            )
            writer.write(message)
            link.stream.receive_data(await link.receive(0.5))
            assert isinstance(link.stream.next_event(), Request)
            writer.write(message[:10])
            link.stream.receive_data(await link.receive(0.5))
            link.stream.next_event()
            with pytest.raises(MessageTimedOut) as caught:
                while True:  # one byte every 0.2 s never finishes within 0.5 s
                    writer.write(b"x")
                    await asyncio.sleep(0.2)
                    link.stream.receive_data(await link.receive(0.5))
                    link.stream.next_event()
            assert str(caught.value).startswith(
                "the premises connection 1 left a message incomplete for 0.5s"
            )
            assert caught.value.reason == "header_timeout"
            writer.close()
        finally:
            await acceptor.close()

    asyncio.run(scenario())


def test_a_message_over_the_limit_is_refused_before_it_is_buffered() -> None:
    stream = TraversalSettings(max_message_size=4096).sip_stream()
    stream.receive_data(
        b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1"
        b"\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 10000000\r\n\r\n"
    )
    with pytest.raises(BodyTooLargeError) as caught:
        stream.next_event()
    assert str(caught.value) == "Content-Length 10000000 is over the 4096-byte body limit"
    assert caught.value.status_hint == 413


def test_a_port_in_use_is_reported_not_raised_past_the_listener() -> None:
    async def scenario() -> None:
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            listener = PremisesListener.parse(f"127.0.0.1:{port}", "tcp", "127.0.0.1")

            async def on_link(link: Link) -> None:
                raise AssertionError("nothing may be admitted")

            acceptor = PremisesAcceptor(
                listener,
                PBX,
                context=None,
                anchors=(),
                allowed=listener.networks,
                settings=TraversalSettings(),
                on_link=on_link,
            )
            with pytest.raises(ListenerUnavailable) as caught:
                await acceptor.start()
            assert str(caught.value) == (
                f"cannot listen on 127.0.0.1:{port} for the premises server: Address already in use"
            )

    asyncio.run(scenario())
