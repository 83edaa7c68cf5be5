"""Two cloud processes on one database (SQLite, and PostgreSQL as past one machine) and one
Redis: a change made on one reaches all.

Each cloud polls the database only every 60 s here, so a push that arrives within seconds
on the connectors of the *other* process can only have travelled through Redis pub/sub.
The connectors are real ``ControlClient``s (real trust stores, real TLS, client
certificates) in this test process, split between the two clouds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_stack import (
    CLOUD_ENV,
    ConnectorNode,
    add_operator,
    cloud_keys,
    enroll_in_cloud,
    install_registration,
    make_ca,
    open_node,
    utc_now,
    wait_for,
)
from test_control_push import pem, portal, upload

from hybridge.cloud import calist
from hybridge.connector.control import ChannelSettings, ControlClient
from hybridge.connector.demo_run import RoleProcess, free_port, start_role
from hybridge.core.control import Backoff
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore import TrustUse

redis = pytest.importorskip("redis", reason="redis-py (redis>=5) is needed for the fan-out")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run scripts/install-system-deps"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), 10, "redis-server to answer PING")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except redis.RedisError:
        return False


def start_cloud_on(
    tmp_path: Path, name: str, pki: DemoPki, database_url: str, redis_url: str
) -> RoleProcess:
    port = free_port()
    url = f"https://localhost:{port}"
    args = [
        "cloud", "serve",
        "--data-dir", str(tmp_path / name),
        "--database-url", database_url,
        "--host", "127.0.0.1", "--port", str(port), "--base-url", url,
        "--cert", str(pki.cloud_cert), "--key", str(pki.cloud_key),
        "--connector-ca", str(pki.connector_ca_cert),
        "--connector-ca-key", str(pki.connector_ca_key),
        "--list-signing-key", str(pki.list_signing_key),
        "--ca-roots", str(pki.cloud_ca_roots),
    ]  # fmt: skip
    env = {
        **os.environ,
        **CLOUD_ENV,
        "HYBRIDGE_CONTROL_POLL": "60",
        "HYBRIDGE_CONTROL_REDIS_URL": redis_url,
    }
    return start_role(name, args, url, pki.root_ca, tmp_path / f"{name}.log", env=env)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database both clouds share: one SQLite file, or a PostgreSQL database (the
    deployment past one machine, DESIGN.md §6)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return sqlite_url(tmp_path / "shared-cloud.db")


def test_one_change_reaches_connectors_of_both_cloud_processes(
    tmp_path: Path, demo_pki: DemoPki, redis_url: str, shared_database_url: str
) -> None:
    database_url = shared_database_url
    add_operator(tmp_path / "a", database_url)
    clouds = [start_cloud_on(tmp_path, "a", demo_pki, database_url, redis_url)]
    nodes: list[ConnectorNode] = []
    try:
        clouds.append(start_cloud_on(tmp_path, "b", demo_pki, database_url, redis_url))
        cloud_db = open_database(database_url, "cloud")
        keys = cloud_keys(demo_pki, tmp_path / "a", clouds[0].url)
        for index in range(4):
            cloud = clouds[index % 2]
            node = open_node(tmp_path / f"connector{index}", demo_pki)
            install_registration(
                node, enroll_in_cloud(cloud_db, keys), keys, cloud_db, cloud_url=cloud.url
            )
            nodes.append(node)
        new_ca = make_ca("Fan-out Root")
        asyncio.run(_run(nodes, clouds[0].url, demo_pki, new_ca))
        fingerprint = calist.fingerprint(new_ca)
        for node in nodes:
            assert fingerprint in {
                calist.fingerprint(a) for a in node.store.anchors_for(TrustUse.PLATFORM)
            }
        cloud_db.dispose()
    finally:
        for node in nodes:
            node.close()
        for cloud in clouds:
            cloud.stop()


async def _run(nodes: list[ConnectorNode], url_a: str, pki: DemoPki, new_ca: object) -> None:
    clients = [
        ControlClient(
            store=node.store,
            database=node.database,
            credentials=node.credentials,
            data_dir=node.data_dir,
            clock=utc_now,
            settings=ChannelSettings(backoff=Backoff(0.1, 0.5)),
        )
        for node in nodes
    ]
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        deadline = time.monotonic() + 20
        while not all(c.status.state == "connected" for c in clients):
            assert time.monotonic() < deadline, [c.status.view() for c in clients]
            await asyncio.sleep(0.1)
        before = nodes[0].store.installed_cloud_sequence()
        assert before is not None

        def change() -> None:
            client = portal(url_a, pki)
            try:
                upload(client, pem(new_ca))
            finally:
                client.close()

        started = time.monotonic()
        await asyncio.to_thread(change)
        # The store commits in a worker thread before the client records ``last_push``:
        # wait for both, not only the first.
        while not (
            all(n.store.installed_cloud_sequence() == before + 1 for n in nodes)
            and all(c.status.last_push for c in clients)
        ):
            # Poll interval 60 s: only the broker can deliver within this bound.
            assert time.monotonic() - started < 10, [c.status.view() for c in clients]
            await asyncio.sleep(0.1)
        assert all(c.status.last_push and c.status.last_push["applied"] for c in clients)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
