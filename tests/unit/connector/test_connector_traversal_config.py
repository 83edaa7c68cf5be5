"""The traversal configuration: values validated on construction, the row and the vaulted key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import certs
from hybridge.connector.traversal_config import (
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.connector.traversal_errors import TraversalConfigInvalid
from hybridge.storage.db import open_database, sqlite_url
from hybridge.vault import Secret, Vault, configured_source


def _key_pem(key: object) -> Secret:
    return Secret(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraversalStore]:
    database = open_database(sqlite_url(tmp_path / "node.db"), "node")
    vault = Vault.open(database, configured_source(tmp_path, environ={}), create=True)
    yield TraversalStore(database, vault)
    database.dispose()


def _config(**overrides: object) -> TraversalConfig:
    values: dict[str, object] = {
        "edge": EdgeAddress.parse("edge.example.test:7001"),
        "edge_name": "edge.example.test",
        "premises": PremisesServer.parse("sip:pbx.example.test;transport=tls"),
    }
    values.update(overrides)
    return TraversalConfig(**values)  # type: ignore[arg-type]


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("edge.example.test:7002", "edge.example.test", 7002),
        ("Edge.Example.Test", "edge.example.test", 7001),
        ("[::1]:7001", "::1", 7001),
        ("127.0.0.1:1", "127.0.0.1", 1),
    ],
)
def test_edge_addresses(text: str, host: str, port: int) -> None:
    address = EdgeAddress.parse(text)
    assert (address.host, address.port) == (host, port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("edge.example.test:abc", "has port 'abc'; give 'host:port'"),
        ("edge.example.test:0", "edge port 0 is not 1..65535"),
        ("edge.example.test:70000", "edge port 70000 is not 1..65535"),
        ("bad host:7001", "edge host 'bad host' is neither an IP address nor a DNS host name"),
        ("::1:7001", "write an IPv6 address as '[addr]:port'"),
        ("[::1:7001", "is not '[ipv6]:port'"),
    ],
)
def test_edge_addresses_refused(text: str, message: str) -> None:
    with pytest.raises(TraversalConfigInvalid) as caught:
        EdgeAddress.parse(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "expected", "transport", "name"),
    [
        ("sip:pbx.example.test", "sip:pbx.example.test:5060;transport=tcp", "tcp", None),
        ("sip:pbx.example.test;transport=TLS", "sip:pbx.example.test:5061;transport=tls",
         "tls", None),
        ("sips:pbx.example.test:5071", "sip:pbx.example.test:5071;transport=tls", "tls", None),
        ("sip:10.0.0.5:5080;transport=tls", "sip:10.0.0.5:5080;transport=tls", "tls",
         "pbx.example.test"),
    ],
)  # fmt: skip
def test_premises_servers(uri: str, expected: str, transport: str, name: str | None) -> None:
    server = PremisesServer.parse(uri, name)
    assert server.uri == expected
    assert server.transport == transport
    assert server.name == (name or server.host)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://pbx.example.test", "is not a SIP URI"),
        ("sip:alice@pbx.example.test", "has a user part"),
        ("sip:pbx.example.test;transport=udp", "only transport=tcp or transport=tls"),
        ("sip:pbx.example.test;lr", "has parameter 'lr'"),
        ("sips:pbx.example.test;transport=tcp", "a sips: URI needs TLS"),
        ("sip:pbx.example.test:99999", "premises port 99999 is not 1..65535"),
    ],
)
def test_premises_servers_refused(uri: str, message: str) -> None:
    with pytest.raises(TraversalConfigInvalid) as caught:
        PremisesServer.parse(uri)
    assert message in str(caught.value)


def test_edge_name_follows_the_name_rules() -> None:
    assert _config(edge_name="EDGE.Example.Test.").edge_name == "edge.example.test"
    with pytest.raises(TraversalConfigInvalid, match=r"edge name '\*\.example\.test'"):
        _config(edge_name="*.example.test")
    with pytest.raises(TraversalConfigInvalid, match="edge name 'not a name'"):
        _config(edge_name="not a name")


@pytest.mark.parametrize("interval", [0, 0.1, 3601, float("nan")])
def test_keepalive_interval_bounds(interval: float) -> None:
    with pytest.raises(TraversalConfigInvalid, match="keep-alive interval"):
        _config(keepalive_interval=interval)


def test_certificate_must_be_pem() -> None:
    with pytest.raises(TraversalConfigInvalid, match="not a PEM certificate chain"):
        _config(certificate_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


# -- the store -----------------------------------------------------------------------------


def test_store_round_trip_without_dedicated_certificate(store: TraversalStore) -> None:
    assert store.get() is None
    config = _config(keepalive_interval=15)
    store.set(config, key=None, actor="test")
    record = store.get()
    assert record is not None and record.config == config and record.updated_by == "test"
    assert record.public_view()["certificate"] is None
    assert store.clear(actor="test") is True
    assert store.get() is None
    assert store.clear(actor="test") is False


def test_dedicated_key_is_vaulted_and_never_in_the_row(
    store: TraversalStore, tmp_path: Path
) -> None:
    root = certs.build("Traversal Unit Root")
    key = certs.new_key("ec")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=key)
    secret = _key_pem(key)
    config = _config(certificate_pem=leaf.pem.decode())
    store.set(config, key=secret, actor="test")
    record = store.get()
    assert record is not None
    assert record.public_view()["certificate"]["subject"].startswith("CN=connector.example.test")
    assert store.key() == secret
    raw = (tmp_path / "node.db").read_bytes()
    assert secret.reveal() not in raw and b"PRIVATE KEY" not in raw
    # Saving again with the same certificate and no key keeps the stored key.
    store.set(_config(certificate_pem=leaf.pem.decode(), keepalive_interval=5), key=None, actor="t")
    assert store.key() == secret
    # Back to the registration certificate: the dedicated key is deleted.
    store.set(_config(), key=None, actor="test")
    assert store.key() is None


def test_a_key_that_is_not_the_certificates_is_refused(store: TraversalStore) -> None:
    root = certs.build("Traversal Unit Root")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=certs.new_key())
    other = _key_pem(certs.new_key("ec"))
    with pytest.raises(TraversalConfigInvalid) as caught:
        store.set(_config(certificate_pem=leaf.pem.decode()), key=other, actor="test")
    assert "does not belong to the traversal certificate" in str(caught.value)
    assert "PRIVATE" not in str(caught.value)
    assert store.get() is None and store.key() is None


def test_a_certificate_without_any_key_is_refused(store: TraversalStore) -> None:
    root = certs.build("Traversal Unit Root")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=certs.new_key())
    with pytest.raises(TraversalConfigInvalid, match="needs its private key"):
        store.set(_config(certificate_pem=leaf.pem.decode()), key=None, actor="test")
    with pytest.raises(TraversalConfigInvalid, match="not an unencrypted PEM private key"):
        store.set(_config(certificate_pem=leaf.pem.decode()), key=Secret(b"junk"), actor="t")
    with pytest.raises(TraversalConfigInvalid, match="without a traversal certificate"):
        store.set(_config(), key=_key_pem(certs.new_key()), actor="test")
    assert store.get() is None
