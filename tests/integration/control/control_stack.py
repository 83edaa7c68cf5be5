"""Helpers of the control-channel tests: a registered connector without the browser dance.

Registration itself is tested by ``tests/integration/connector``; here the point is the
channel, so a connector is registered the way the cloud's token endpoint and the
connector's callback would leave it: the cloud's ``connector`` row with a client
certificate issued by the real connector CA (``issue_client_certificate``), and on the
connector the stored registration, the vaulted key and the first CA list verified and
applied (``verify_manifest`` + ``apply_cloud_set``), with the real code of both roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridge.cloud import calist
from hybridge.cloud.connector_ca import issue_client_certificate
from hybridge.cloud.keys import CloudKeys, load_cloud_keys
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import create_org_admin, get_or_create_organisation
from hybridge.cloud.settings import CloudSettings
from hybridge.connector.credentials import CredentialStore, Registration, key_fingerprint
from hybridge.core.manifest import verify_manifest
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.truststore import TrustStore, open_trust_store
from hybridge.truststore.services import DATABASE_NAME
from hybridge.vault import Secret, Vault, configured_source
from hybridge.web.clock import system_clock

OPERATOR = "ops@acme.test"
PASSWORD = "control channel test password"
#: Fast heartbeats and reconnects so the tests stay within seconds.
CLOUD_ENV = {"HYBRIDGE_CONTROL_HEARTBEAT": "2", "HYBRIDGE_CONTROL_POLL": "1"}
CONNECTOR_ENV = {"HYBRIDGE_CONTROL_BACKOFF_BASE": "0.2", "HYBRIDGE_CONTROL_BACKOFF_CAP": "1"}


def add_operator(cloud_dir: Path, database_url: str | None = None) -> None:
    cloud_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(database_url or sqlite_url(cloud_dir / "cloud.db"), "cloud")
    try:
        with database.transaction() as db:
            create_org_admin(db, "Acme", OPERATOR, PASSWORD, system_clock(), operator=True)
    finally:
        database.dispose()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cloud_keys(pki: DemoPki, cloud_dir: Path, url: str) -> CloudKeys:
    """The cloud's keys, loaded from the demo PKI exactly as ``cloud serve`` loads them."""
    settings = CloudSettings(
        data_dir=cloud_dir,
        base_url=url,
        server_cert=pki.cloud_cert,
        connector_ca_cert=pki.connector_ca_cert,
        connector_ca_key=pki.connector_ca_key,
        list_signing_key=pki.list_signing_key,
    )
    return load_cloud_keys(settings)


@dataclass(frozen=True)
class Enrolled:
    """A connector known to the cloud: its id, client certificate and key (PEM)."""

    connector_id: str
    certificate_pem: bytes
    key_pem: bytes
    hostname: str


def _csr(key: ec.EllipticCurvePrivateKey, hostname: str) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .sign(key, hashes.SHA256())
    )


def enroll_in_cloud(
    cloud_db: Database,
    keys: CloudKeys,
    *,
    org: str = "Acme",
    hostname: str = "connector.acme.test",
    trust_mode: str = "auto",
    connector_id: str | None = None,
    insert: bool = True,
) -> Enrolled:
    """Issue a client certificate and (``insert``) create the cloud's connector row."""
    now = utc_now()
    key = ec.generate_private_key(ec.SECP256R1())
    connector_id = connector_id or str(uuid.uuid4())
    cert = issue_client_certificate(
        keys, _csr(key, hostname), connector_id, hostname, org, now, dt.timedelta(days=30)
    )
    if insert:
        with cloud_db.transaction() as session:
            organisation = get_or_create_organisation(session, org, now)
            version = calist.current_version(session)
            session.execute(
                sa.insert(connector).values(
                    id=connector_id,
                    org_id=organisation.id,
                    hostname=hostname,
                    key_fp=key_fingerprint(key.public_key()),
                    certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                    certificate_serial=format(cert.serial_number, "x"),
                    trust_mode=trust_mode,
                    status="active",
                    registered_at=now,
                    approved_by="test",
                    installed_sequence=version.sequence if version else None,
                    last_seen_at=now,
                )
            )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Enrolled(connector_id, cert.public_bytes(serialization.Encoding.PEM), key_pem, hostname)


def set_status(cloud_db: Database, connector_id: str, status: str) -> None:
    with cloud_db.transaction() as session:
        session.execute(
            sa.update(connector).where(connector.c.id == connector_id).values(status=status)
        )


@dataclass
class ConnectorNode:
    """The connector's stores, opened in the test process (also while its process runs)."""

    data_dir: Path
    store: TrustStore
    database: Database
    credentials: CredentialStore

    def close(self) -> None:
        self.store.close()
        self.database.dispose()


def open_node(data_dir: Path, pki: DemoPki) -> ConnectorNode:
    store = open_trust_store(data_dir, bootstrap_file=pki.bootstrap_bundle)
    database = open_database(sqlite_url(data_dir / DATABASE_NAME), "node")
    vault = Vault.open(database, configured_source(data_dir), create=True, actor="test")
    return ConnectorNode(data_dir, store, database, CredentialStore(database, vault))


def install_registration(
    node: ConnectorNode,
    enrolled: Enrolled,
    keys: CloudKeys,
    cloud_db: Database,
    *,
    cloud_url: str,
    control_url: str | None = None,
    trust_mode: str = "auto",
    org: str = "Acme",
) -> Registration:
    """What a completed registration leaves on the connector (see the module docstring)."""
    now = utc_now()
    registration = Registration(
        connector_id=enrolled.connector_id,
        cloud_url=cloud_url,
        organisation_id="org",
        organisation_name=org,
        hostname=enrolled.hostname,
        key_fp="0" * 64,
        key_secret_id="0" * 32,
        client_certificate_pem=enrolled.certificate_pem.decode(),
        connector_ca_pem=keys.connector_ca_pem,
        list_signing_key_pem=keys.list_signing_public_pem,
        trust_mode=trust_mode,
        cloud_ca_hint=keys.cloud_ca_hint,
        control_url=control_url or "wss://" + cloud_url.removeprefix("https://") + "/control",
        registered_at=now,
        registered_by="admin",
    )
    if trust_mode == "auto":
        with cloud_db.transaction() as session:
            token = calist.manifest_for(session, enrolled.connector_id, keys, cloud_url, now)
        assert token is not None
        manifest = verify_manifest(
            token,
            keys.list_signing_key.public_key(),
            now=now,
            installed_sequence=node.store.installed_cloud_sequence(),
            audience=enrolled.connector_id,
        )
        node.store.apply_cloud_set(
            manifest.certificates, actor=f"cloud:{cloud_url}", sequence=manifest.sequence
        )
    return node.credentials.save(registration, Secret(enrolled.key_pem), actor="admin")


def make_ca(name: str, *, days: int = 365, ca: bool = True) -> x509.Certificate:
    """A fresh self-signed certificate (a CA unless ``ca`` is False)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def client_ssl(pki: DemoPki, enrolled: Enrolled | None, tmp: Path) -> ssl.SSLContext:
    """A plain TLS client context (demo root) presenting ``enrolled``'s certificate."""
    context = ssl.create_default_context(cafile=str(pki.root_ca))
    if enrolled is not None:
        cert = tmp / f"{enrolled.connector_id}.pem"
        key = tmp / f"{enrolled.connector_id}.key"
        cert.write_bytes(enrolled.certificate_pem)
        key.write_bytes(enrolled.key_pem)
        key.chmod(0o600)
        context.load_cert_chain(str(cert), str(key))
    return context


HELLO = '{"type":"hello","version":"test","installed_seq":null}'


async def close_reason(
    url: str, context: ssl.SSLContext, frames: tuple[str, ...] = (HELLO,)
) -> tuple[int | None, str]:
    """Open ``/control`` with ``context``, send ``frames``, return the close code and reason."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, ssl=context, open_timeout=10, compression=None) as websocket:
        try:
            # The cloud may close before the first frame is sent (a refusal decided at the
            # handshake): the close then surfaces from ``send`` instead of ``recv``.
            for frame in frames:
                await websocket.send(frame)
            while True:
                await asyncio.wait_for(websocket.recv(), 10)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")


class BackgroundClient:
    """A ``ControlClient`` on its own event loop in a thread, for synchronous tests."""

    def __init__(self, node: ConnectorNode) -> None:
        import threading

        from hybridge.connector.control import ChannelSettings, ControlClient
        from hybridge.core.control import Backoff

        self.client = ControlClient(
            store=node.store,
            database=node.database,
            credentials=node.credentials,
            data_dir=node.data_dir,
            clock=utc_now,
            settings=ChannelSettings(backoff=Backoff(0.1, 0.5)),
        )
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self.client.run())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def stop(self) -> None:
        task = self._task
        if task is not None:
            self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)
