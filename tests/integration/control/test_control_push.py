"""The control channel end to end: a real cloud process, real connector processes, real TLS.

One cloud per test; connectors registered with ``control_stack`` (the channel is the
subject here, registration has its own tests). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from control_stack import (
    CLOUD_ENV,
    CONNECTOR_ENV,
    HELLO,
    OPERATOR,
    PASSWORD,
    BackgroundClient,
    Enrolled,
    add_operator,
    client_ssl,
    close_reason,
    cloud_keys,
    enroll_in_cloud,
    install_registration,
    make_ca,
    open_node,
    set_status,
    utc_now,
    wait_for,
)
from cryptography.hazmat.primitives import serialization

from hybridge import __version__
from hybridge.cloud import calist
from hybridge.cloud.control_models import connector_channel
from hybridge.connector.control import ChannelSettings, ControlClient
from hybridge.connector.demo_run import RoleProcess, start_cloud, start_connector
from hybridge.core.control import Backoff
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.truststore import TrustUse
from hybridge.truststore.bundle import CRASH_POINT_ENV
from hybridge.truststore.interfaces import CertificateSource

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def portal(url: str, pki: DemoPki) -> httpx.Client:
    client = httpx.Client(
        base_url=url, verify=ssl.create_default_context(cafile=str(pki.root_ca)), timeout=30
    )
    page = client.get("/login")
    token = CSRF.findall(page.text)[-1]
    response = client.post(
        "/login", data={"login": OPERATOR, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return client


def upload(client: httpx.Client, pem: bytes) -> None:
    page = client.get("/ca-list")
    token = CSRF.findall(page.text)[-1]
    response = client.post("/ca-list/upload", data={"pem": pem.decode(), "csrf_token": token})
    assert response.status_code == 200 and "Published version" in response.text, response.text


def send_command(client: httpx.Client, connector_id: str, command: str) -> httpx.Response:
    page = client.get("/connectors")
    token = CSRF.findall(page.text)[-1]
    return client.post(
        f"/connectors/{connector_id}/command", data={"command": command, "csrf_token": token}
    )


def channel_row(cloud_db: Database, connector_id: str) -> sa.Row | None:
    with cloud_db.transaction() as session:
        return session.execute(
            sa.select(connector_channel).where(connector_channel.c.connector_id == connector_id)
        ).first()


def installed(node_dir: Path, pki: DemoPki) -> int | None:
    node = open_node(node_dir, pki)
    try:
        return node.store.installed_cloud_sequence()
    finally:
        node.close()


def pem(cert) -> bytes:  # type: ignore[no-untyped-def]
    return cert.public_bytes(serialization.Encoding.PEM)


def setup_connector(
    tmp_path: Path, name: str, pki: DemoPki, cloud_db: Database, url: str, **kwargs: str
) -> tuple[str, Path]:
    """Enroll a connector in the cloud and leave its registration in ``tmp_path/name``."""
    keys = cloud_keys(pki, tmp_path / "cloud", url)
    enrolled = enroll_in_cloud(cloud_db, keys, **kwargs)
    node = open_node(tmp_path / name / "connector", pki)
    try:
        install_registration(node, enrolled, keys, cloud_db, cloud_url=url, **kwargs)
    finally:
        node.close()
    return enrolled.connector_id, tmp_path / name


@dataclass
class Stack:
    """One cloud process for the module, its database, and the processes started."""

    tmp: Path
    pki: DemoPki
    cloud: RoleProcess
    cloud_db: Database
    started: list[RoleProcess]

    def connector(self, name: str, env: dict[str, str] | None = None) -> RoleProcess:
        role = start_connector(
            self.tmp / name, self.pki, env={**os.environ, **CONNECTOR_ENV, **(env or {})}
        )
        self.started.append(role)
        return role

    def new_connector(self, name: str) -> tuple[str, Path]:
        return setup_connector(self.tmp, name, self.pki, self.cloud_db, self.cloud.url)

    def current_sequence(self) -> int:
        with self.cloud_db.transaction() as session:
            version = calist.current_version(session)
        assert version is not None
        return version.sequence

    def restart_cloud(self) -> None:
        port = int(self.cloud.url.rsplit(":", 1)[1])
        self.cloud = start_cloud(self.tmp, self.pki, port=port, env={**os.environ, **CLOUD_ENV})
        self.started.append(self.cloud)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("control")
    add_operator(tmp / "cloud")
    cloud = start_cloud(tmp, demo_pki, env={**os.environ, **CLOUD_ENV})
    cloud_db = open_database(sqlite_url(tmp / "cloud" / "cloud.db"), "cloud")
    stack = Stack(tmp, demo_pki, cloud, cloud_db, [cloud])
    yield stack
    for role in reversed(stack.started):
        role.stop()
    cloud_db.dispose()


def wait_online(stack: Stack, connector_id: str) -> None:
    wait_for(
        lambda: (row := channel_row(stack.cloud_db, connector_id)) is not None and row.online,
        20,
        "the connector's channel to be online",
    )


def test_unknown_deregistered_and_certless_connectors_are_refused(stack: Stack) -> None:
    url = stack.cloud.url.replace("https://", "wss://") + "/control"
    keys = cloud_keys(stack.pki, stack.tmp / "cloud", stack.cloud.url)
    stranger = enroll_in_cloud(stack.cloud_db, keys, insert=False)
    leaver = enroll_in_cloud(stack.cloud_db, keys)
    revoked = enroll_in_cloud(stack.cloud_db, keys)
    set_status(stack.cloud_db, leaver.connector_id, "deregistered")
    set_status(stack.cloud_db, revoked.connector_id, "revoked")

    def refusal(enrolled: Enrolled | None) -> tuple[int | None, str]:
        return asyncio.run(close_reason(url, client_ssl(stack.pki, enrolled, stack.tmp)))

    assert refusal(None) == (4401, "a connector client certificate is required (mutual TLS)")
    assert refusal(stranger) == (4403, f"connector {stranger.connector_id!r} is unknown")
    assert refusal(leaver) == (4403, f"connector {leaver.connector_id!r} is deregistered")
    assert refusal(revoked) == (4403, f"connector {revoked.connector_id!r} is revoked")

    active = enroll_in_cloud(stack.cloud_db, keys)
    context = client_ssl(stack.pki, active, stack.tmp)
    pong = '{"type":"pong","command_id":1}'
    assert asyncio.run(close_reason(url, context, (pong,))) == (
        4400,
        "the first frame must be a hello",
    )
    code, reason = asyncio.run(close_reason(url, context, (HELLO, '{"type":"bogus"}')))
    assert (code, reason.split(";")[0]) == (4400, "malformed: unknown frame type 'bogus'")


def test_push_reaches_connector_and_cloud_records_it(stack: Stack) -> None:
    connector_id, work = stack.new_connector("c1")
    role = stack.connector("c1")
    # A manual-mode connector: its admin uploaded the cloud's root by hand; it holds the
    # channel (heartbeats, commands) but must get no push.
    keys = cloud_keys(stack.pki, stack.tmp / "cloud", stack.cloud.url)
    manual_enrolled = enroll_in_cloud(stack.cloud_db, keys, trust_mode="manual")
    manual_node = open_node(stack.tmp / "manual" / "connector", stack.pki)
    manual_node.store.add_manual(
        [CertificateSource("root.pem", stack.pki.root_ca.read_bytes())], actor="admin"
    )
    install_registration(
        manual_node,
        manual_enrolled,
        keys,
        stack.cloud_db,
        cloud_url=stack.cloud.url,
        trust_mode="manual",
    )
    manual = BackgroundClient(manual_node)
    wait_online(stack, connector_id)
    wait_online(stack, manual_enrolled.connector_id)
    current = stack.current_sequence()
    new_ca = make_ca("Control Test Added Root")
    client = portal(stack.cloud.url, stack.pki)
    upload(client, pem(new_ca))
    wait_for(
        lambda: installed(work / "connector", stack.pki) == current + 1,
        10,
        "the new sequence applied on the connector",
    )
    node = open_node(work / "connector", stack.pki)
    try:
        fingerprint = calist.fingerprint(new_ca)
        anchors = node.store.anchors_for(TrustUse.PLATFORM)
        assert fingerprint in {calist.fingerprint(a) for a in anchors}
        apply = next(e for e in node.store.audit_log() if e.action == "trust.cloud_apply")
        assert apply.added == (fingerprint,) and apply.removed == ()
        assert f"sequence {current + 1} installed (was {current})" in apply.detail
        assert pem(new_ca).decode().strip() in node.store.bundle_path.read_text()
    finally:
        node.close()
    row = wait_for(
        lambda: (
            (r := channel_row(stack.cloud_db, connector_id)) is not None
            and r.last_ack_sequence == current + 1
            and r
        ),
        5,
        "the cloud to record the ack",
    )
    assert row.last_push_sequence == current + 1 and row.reported_sequence == current + 1
    page = client.get("/connectors")
    assert "online" in page.text and f"version {current + 1}" in page.text, page.text
    metrics = client.get("/metrics").text
    assert "hybridge_cloud_control_connected_connectors 2.0" in metrics
    assert "hybridge_cloud_control_pushes_applied_total 1.0" in metrics
    # Heartbeats (every 2 s here) reach the cloud's table and its lag histogram.
    beat = wait_for(
        lambda: (
            (r := channel_row(stack.cloud_db, connector_id)) is not None
            and r.last_heartbeat_at > r.connected_at
            and r
        ),
        8,
        "a heartbeat after the hello",
    )
    assert (beat.version, beat.status, beat.alarms) == (__version__, "ok", [])
    assert "hybridge_cloud_control_heartbeat_lag_seconds_count" in client.get("/metrics").text
    assert manual.client.status.state == "connected" and manual.client.status.last_push is None
    # A signed ping from the portal reaches the manual connector (commands need no auto mode).
    sent = send_command(client, manual_enrolled.connector_id, "ping")
    assert sent.status_code == 303, sent.text[sent.text.find("<main") :][:800]
    wait_for(
        lambda: manual.client.ledger.last(manual_enrolled.connector_id) == 1,
        5,
        "the ping to be verified and answered",
    )
    refused = send_command(client, manual_enrolled.connector_id, "format_disk")
    assert refused.status_code == 400
    assert "command 'format_disk' cannot be sent from the portal" in html.unescape(refused.text)
    stranger = enroll_in_cloud(stack.cloud_db, keys, org="Other Org")
    refused = send_command(client, stranger.connector_id, "ping")
    assert refused.status_code == 400
    assert f"connector {stranger.connector_id!r} is not one of 'Acme'" in html.unescape(
        refused.text
    )
    assert manual_node.store.installed_cloud_sequence() is None
    manual.stop()
    manual_node.close()
    role.stop()
    wait_for(lambda: not channel_row(stack.cloud_db, connector_id).online, 5, "offline recorded")
    assert "offline" in client.get("/connectors").text


def test_cloud_side_deregistration_sends_signed_deregister_and_closes(stack: Stack) -> None:
    keys = cloud_keys(stack.pki, stack.tmp / "cloud", stack.cloud.url)
    enrolled = enroll_in_cloud(stack.cloud_db, keys)
    node = open_node(stack.tmp / "in-process" / "connector", stack.pki)
    try:
        install_registration(node, enrolled, keys, stack.cloud_db, cloud_url=stack.cloud.url)
        client = ControlClient(
            store=node.store,
            database=node.database,
            credentials=node.credentials,
            data_dir=node.data_dir,
            clock=utc_now,
            settings=ChannelSettings(backoff=Backoff(0.1, 0.5)),
        )

        async def scenario() -> None:
            task = asyncio.create_task(client.run())
            try:
                await _until(lambda: client.status.state == "connected", 15)
                set_status(stack.cloud_db, enrolled.connector_id, "deregistered")
                # The hub's poll (1 s here) sees it, signs "deregister", closes with 4403.
                await _until(lambda: client.status.state == "not_registered", 10)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        asyncio.run(scenario())
        assert node.credentials.current() is None
        assert node.store.installed_cloud_sequence() is None
        assert node.store.anchors_for(TrustUse.PLATFORM) == ()
        removed = next(e for e in node.store.audit_log() if e.action == "trust.cloud_clear")
        assert removed.actor == f"cloud:{stack.cloud.url}" and removed.removed
    finally:
        node.close()


async def _until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_connector_killed_mid_apply_then_cloud_killed_and_restarted(stack: Stack) -> None:
    connector_id, work = stack.new_connector("c2")
    node_dir = work / "connector"
    before = installed(node_dir, stack.pki)
    role = stack.connector("c2", env={CRASH_POINT_ENV: "mid-export"})
    wait_online(stack, connector_id)
    client = portal(stack.cloud.url, stack.pki)
    upload(client, pem(make_ca("Control Test Crash Root")))
    role.process.wait(15)
    # SIGKILL from inside the trust store's export: a power cut in the middle of the apply.
    assert role.process.returncode == -signal.SIGKILL
    node = open_node(node_dir, stack.pki)  # opening repairs the bundle from the database
    try:
        after = node.store.installed_cloud_sequence()
        assert after is not None and before is not None and after == before + 1
        assert node.store.bundle_path.read_text() == node.store.export_pem()
    finally:
        node.close()
    stack.connector("c2")
    wait_for(
        lambda: (
            (r := channel_row(stack.cloud_db, connector_id)) is not None
            and r.online
            and r.reported_sequence == after
        ),
        20,
        "the restarted connector to report the applied sequence",
    )

    # The cloud dies (SIGKILL: no goodbye to anyone); a change is published meanwhile.
    stack.cloud.process.send_signal(signal.SIGKILL)
    stack.cloud.process.wait(10)
    keys = cloud_keys(stack.pki, stack.tmp / "cloud", stack.cloud.url)
    late = make_ca("Control Test While Down Root")
    with stack.cloud_db.transaction() as session:
        version = calist.add_certificates(
            session, [late], OPERATOR, keys, stack.cloud.url, utc_now()
        )
    stack.restart_cloud()
    # The connector reconnects (back-off) and its hello's old sequence makes the cloud
    # push the current one: caught up without anyone touching it.
    wait_for(
        lambda: installed(node_dir, stack.pki) == version.sequence,
        20,
        "the connector to catch up after the cloud restart",
    )
