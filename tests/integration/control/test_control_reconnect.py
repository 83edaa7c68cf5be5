"""500 connectors, the cloud SIGKILLed and restarted on the same port: all come back, spread.

Issue 5 §7. A real cloud process (``hybridge cloud serve``, uvloop); 500 simulated
connectors (``fleet``: real client certificates from the real connector CA, real TLS
WebSockets) in two load processes. The cloud is killed with SIGKILL (no close frame, no
goodbye) and restarted on the same port. Asserted: every connector is back within a bound
(none gave up: each retried until welcomed), the reconnections are spread by the back-off's
jitter (no 100 ms bucket holds more than a fifth of the fleet, and they span several
seconds), and one CA-list change afterwards reaches all 500, each verifying the manifest
for its own identity.

Also here: the cloud runs on uvloop (its loop's extension module is mapped in the process)
and still authenticates a connector by its client certificate (``cloud.mtls``'s protocol
reads the peer certificate from uvloop's SSL transport), with its rejecting twin.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from control_stack import (
    HELLO,
    add_operator,
    client_ssl,
    close_reason,
    cloud_keys,
    enroll_in_cloud,
    make_ca,
)
from fleet import Fleet, raise_fd_limit
from test_control_push import pem, portal, upload

from hybridge.connector.demo_run import RoleProcess, start_cloud
from hybridge.core.control import Welcome, decode_cloud_message
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import open_database, sqlite_url

# Real processes, 500 TLS connections: about a minute on a quiet 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FLEET = 500
#: Connectors: first retry within 0.5 s, ceiling doubling to 4 s (the real default is 1..60).
BACKOFF = {"backoff_base": 0.5, "backoff_cap": 4.0}
#: The cloud: heartbeats every 30 s (the default), a 1 s database poll.
CLOUD_ENV = {"HYBRIDGE_CONTROL_HEARTBEAT": "30", "HYBRIDGE_CONTROL_POLL": "1"}


@dataclass
class Scene:
    tmp: Path
    pki: DemoPki
    cloud: RoleProcess
    spec_path: Path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki) -> Iterator[Scene]:
    raise_fd_limit()
    tmp = tmp_path_factory.mktemp("reconnect")
    add_operator(tmp / "cloud")
    cloud = start_cloud(tmp, demo_pki, env={**os.environ, **CLOUD_ENV})
    scene = Scene(tmp, demo_pki, cloud, tmp / "fleet.json")
    try:
        database = open_database(sqlite_url(tmp / "cloud" / "cloud.db"), "cloud")
        keys = cloud_keys(demo_pki, tmp / "cloud", cloud.url)
        certs = tmp / "certs"
        certs.mkdir()
        items = []
        for index in range(FLEET):
            enrolled = enroll_in_cloud(database, keys, hostname=f"c{index}.fleet.test")
            cert, key = certs / f"{index}.pem", certs / f"{index}.key"
            cert.write_bytes(enrolled.certificate_pem)
            key.write_bytes(enrolled.key_pem)
            key.chmod(0o600)
            items.append({"id": enrolled.connector_id, "cert": str(cert), "key": str(key)})
        database.dispose()
        spec = {
            "url": cloud.url.replace("https://", "wss://") + "/control",
            "root_ca": str(demo_pki.root_ca),
            "list_key": demo_pki.list_signing_public.read_text(),
            "timeout": 60,
            "connectors": items,
            **BACKOFF,
        }
        scene.spec_path.write_text(json.dumps(spec))
        yield scene
    finally:
        scene.cloud.stop()


def test_cloud_runs_on_uvloop_and_authenticates_by_client_certificate(scene: Scene) -> None:
    maps = Path(f"/proc/{scene.cloud.process.pid}/maps").read_text()
    assert "/uvloop/loop." in maps, "the cloud's event loop is not uvloop's"
    url = scene.cloud.url.replace("https://", "wss://") + "/control"
    database = open_database(sqlite_url(scene.tmp / "cloud" / "cloud.db"), "cloud")
    keys = cloud_keys(scene.pki, scene.tmp / "cloud", scene.cloud.url)
    enrolled = enroll_in_cloud(database, keys, hostname="uvloop.fleet.test")
    database.dispose()

    async def welcomed() -> Welcome:
        from websockets.asyncio.client import connect

        context = client_ssl(scene.pki, enrolled, scene.tmp)
        async with connect(url, ssl=context, compression=None) as websocket:
            await websocket.send(HELLO)
            message = decode_cloud_message(await asyncio.wait_for(websocket.recv(), 10))
            assert isinstance(message, Welcome)
            return message

    welcome = asyncio.run(welcomed())
    assert welcome.connector_id == enrolled.connector_id
    # Rejecting twin: the same server without a client certificate.
    code, reason = asyncio.run(close_reason(url, client_ssl(scene.pki, None, scene.tmp)))
    assert (code, reason) == (4401, "a connector client certificate is required (mutual TLS)")


def test_500_connectors_reconnect_spread_after_sigkill_then_all_get_a_change(
    scene: Scene,
) -> None:
    fleet = Fleet(scene.spec_path, FLEET, processes=2)
    try:
        started = time.monotonic()
        assert fleet.connect(FLEET) == FLEET
        print(f"{FLEET} connected in {time.monotonic() - started:.1f} s")

        killed_at = time.time()
        scene.cloud.process.kill()
        scene.cloud.process.wait(10)
        fleet.killed(killed_at)
        port = int(scene.cloud.url.rsplit(":", 1)[1])
        scene.cloud = start_cloud(scene.tmp, scene.pki, port=port, env={**os.environ, **CLOUD_ENV})
        listening = time.time() - killed_at
        back = fleet.back()
        times = sorted(t for t, _, _ in back)
        tries = [n for _, n, _ in back]
        # The spread is judged where the back-off acts: when each successful attempt
        # started (welcome times also carry the restarted cloud's queueing).
        attempts = sorted(a for _, _, a in back)
        buckets = Counter(int(a * 10) for a in attempts)
        print(
            f"cloud listening again after {listening:.1f} s; all {len(times)} back after "
            f"{times[-1]:.1f} s; attempts mean {sum(tries) / len(tries):.1f} max {max(tries)}; "
            f"busiest 100 ms bucket {buckets.most_common(1)[0][1]}"
        )
        # None gave up: every connector was welcomed again, within a bound (the cloud's
        # restart plus two back-off ceilings).
        assert len(times) == FLEET
        assert times[-1] < listening + 2 * BACKOFF["backoff_cap"] + 20
        assert min(tries) >= 1
        # Spread by the jitter: no 100 ms window holds a fifth of the fleet, and the
        # reconnections span more than a second.
        assert buckets.most_common(1)[0][1] < FLEET // 5, sorted(buckets.items())
        assert attempts[-1] - attempts[0] > 1.0

        # One change reaches all 500, each verifying the manifest for its own identity.
        client = portal(scene.cloud.url, scene.pki)
        changed_at = time.time()
        upload(client, pem(make_ca("Fleet Test Root")))
        client.close()
        acks, refused = fleet.expect(2)
        assert refused == []
        assert len(acks) == FLEET
        print(f"the change acked by all {FLEET} after {max(acks) - changed_at:.1f} s")
        assert max(acks) - changed_at < 30
    finally:
        fleet.close()
