"""The traversal client's loop on real stores: capped back-off with jitter, settings, status."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import certs
from hybridge.connector.credentials import CredentialStore, Registration, new_key
from hybridge.connector.traversal_config import (
    EdgeAddress,
    PremisesServer,
    TraversalConfig,
    TraversalStore,
)
from hybridge.connector.traversal_errors import TraversalIdentityMissing
from hybridge.connector.traversal_link import TraversalSettings, identity
from hybridge.connector.traversal_service import TraversalClient
from hybridge.core.control import Backoff
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import CertificateSource, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.vault import Secret, Vault, configured_source


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HYBRIDGE_TRAVERSAL_BACKOFF_BASE": "5", "HYBRIDGE_TRAVERSAL_BACKOFF_CAP": "1"}, "base"),
        ({"HYBRIDGE_TRAVERSAL_POLL": "0"}, "HYBRIDGE_TRAVERSAL_POLL"),
        ({"HYBRIDGE_TRAVERSAL_BACKOFF_BASE": "soon"}, "could not convert"),
    ],
)
def test_settings_from_env_refuse_bad_values(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TraversalSettings.from_env(environ)


def test_settings_from_env_defaults() -> None:
    settings = TraversalSettings.from_env({})
    assert settings.backoff == Backoff(1.0, 60.0)
    assert settings.pong_timeout == 10.0  # RFC 5626 §4.4.1


def test_unreachable_edge_is_redialled_with_capped_growing_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = certs.build("Traversal Service Root")
    key = certs.new_key("ec")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    trust = open_trust_store(tmp_path)
    trust.add_manual([CertificateSource("root.pem", root.pem)], actor="test")
    database = open_database(sqlite_url(tmp_path / DATABASE_NAME), "node")
    vault = Vault.open(database, configured_source(tmp_path, environ={}), create=True)
    store = TraversalStore(database, vault)
    port = _closed_port()
    store.set(
        TraversalConfig(
            edge=EdgeAddress("127.0.0.1", port),
            edge_name="edge.example.test",
            premises=PremisesServer.parse("sip:127.0.0.1:5060"),
            certificate_pem=leaf.pem.decode(),
        ),
        key=Secret(key_pem),
        actor="test",
    )
    client = TraversalClient(
        store,
        trust,
        CredentialStore(database, vault),
        host="connector.example.test",
        settings=TraversalSettings(backoff=Backoff(0.01, 0.04), config_poll=0.01),
        random=lambda: 0.999,  # the top of each jitter window
    )

    async def run_until_five_redials() -> None:
        client.start()
        async with asyncio.timeout(20):
            while client.status.redials < 5:
                await asyncio.sleep(0.01)
        await client.stop()

    caplog.set_level(logging.INFO, logger="hybridge.connector.traversal")
    try:
        asyncio.run(run_until_five_redials())
    finally:
        trust.close()
        database.dispose()
    delays = [float(m.group(1)) for m in re.finditer(r"in (\d+\.\d+)s \(attempt", caplog.text)]
    # uniform(0, min(cap, base * 2**n)) at random=0.999: 0.01, 0.02, 0.04, then the cap.
    assert delays[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert client.status.state == "waiting" and client.status.connected_since is None
    assert f"cannot connect to edge 127.0.0.1:{port}" in (client.status.last_error or "")
    # The first failure is a warning; the same one again is logged at info.
    levels = [r.levelno for r in caplog.records if "re-dialling" in r.getMessage()]
    assert levels[0] == logging.WARNING and set(levels[1:]) == {logging.INFO}


def test_identity_is_the_dedicated_certificate_else_the_registration_one(tmp_path: Path) -> None:
    root = certs.build("Traversal Identity Root")
    registration_leaf = certs.build("connector.acme.test", issuer=root, is_ca=False)
    trust = open_trust_store(tmp_path)
    database = open_database(sqlite_url(tmp_path / DATABASE_NAME), "node")
    vault = Vault.open(database, configured_source(tmp_path, environ={}), create=True)
    credentials = CredentialStore(database, vault)
    store = TraversalStore(database, vault)
    config = TraversalConfig(
        edge=EdgeAddress("127.0.0.1", 7001),
        edge_name="edge.example.test",
        premises=PremisesServer.parse("sip:127.0.0.1:5060"),
    )
    try:
        # Rejecting twin: no dedicated certificate and no registration.
        with pytest.raises(TraversalIdentityMissing, match="not registered"):
            identity(config, store, credentials)
        _key, secret = new_key()
        credentials.save(
            Registration(
                connector_id="6d1c2c8e-1111-4222-8333-444455556666",
                cloud_url="https://cloud.test",
                organisation_id="org-1",
                organisation_name="Acme",
                hostname="connector.acme.test",
                key_fp="0" * 64,
                key_secret_id="0" * 32,
                client_certificate_pem=registration_leaf.pem.decode(),
                connector_ca_pem=root.pem.decode(),
                list_signing_key_pem="-----BEGIN PUBLIC KEY-----",
                trust_mode="auto",
                cloud_ca_hint="CN=Root",
                control_url="wss://cloud.test/control",
                registered_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
                registered_by="web:admin",
            ),
            secret,
            actor="test",
        )
        cert_pem, key = identity(config, store, credentials)
        assert cert_pem == registration_leaf.pem and key == secret
    finally:
        trust.close()
        database.dispose()
