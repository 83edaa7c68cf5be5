"""The connector's channel page and ``/api/control`` against real processes.

A real cloud process, a real connector process started with the channel's settings given
as ``connector serve`` flags (not environment variables), its admin logged in over TLS.
The page and the JSON must show: connected since when, the last heartbeat acknowledged,
the installed CA-list sequence, the last push applied with its sequence; and after the cloud
is killed: reconnecting with the next attempt time and the "cloud unreachable" alarm (after
the one second given by ``--offline-alarm-after``); then connected again after a restart.
On the same cloud: the hub's liveness sweep closes a silent channel (4408), not a beating one.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from control_stack import (
    CLOUD_ENV,
    HELLO,
    Enrolled,
    add_operator,
    client_ssl,
    cloud_keys,
    enroll_in_cloud,
    make_ca,
    wait_for,
)
from test_control_push import pem, portal, setup_connector, upload

from hybridge.connector.demo_run import (
    RoleProcess,
    create_connector_admin,
    free_port,
    start_cloud,
    start_role,
)
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import Database, open_database, sqlite_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # real role processes

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ADMIN, ADMIN_PASSWORD = "admin", "connector dashboard test password"


@dataclass
class Scene:
    tmp: Path
    pki: DemoPki
    cloud: RoleProcess
    cloud_db: Database
    connector: RoleProcess
    connector_id: str
    admin: httpx.Client


def start_connector_with_flags(work: Path, pki: DemoPki) -> RoleProcess:
    port = free_port()
    url = f"https://localhost:{port}"
    args = [
        "connector", "serve",
        "--data-dir", str(work / "connector"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--base-url", url,
        "--cert", str(pki.connector_cert),
        "--key", str(pki.connector_key),
        "--bootstrap-ca-file", str(pki.bootstrap_bundle),
        "--reconnect-base", "0.2",
        "--reconnect-cap", "1",
        "--offline-alarm-after", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDGE_CONTROL_")}
    return start_role("connector", args, url, pki.root_ca, work / "connector.log", env=env)


def login(url: str, pki: DemoPki) -> httpx.Client:
    client = httpx.Client(
        base_url=url, verify=ssl.create_default_context(cafile=str(pki.root_ca)), timeout=30
    )
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "login": ADMIN,
            "password": ADMIN_PASSWORD,
            "csrf_token": CSRF.findall(page.text)[-1],
        },
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("dashboard")
    add_operator(tmp / "cloud")
    cloud = start_cloud(tmp, demo_pki, env={**os.environ, **CLOUD_ENV})
    cloud_db = open_database(sqlite_url(tmp / "cloud" / "cloud.db"), "cloud")
    started = [cloud]
    try:
        connector_id, work = setup_connector(tmp, "c1", demo_pki, cloud_db, cloud.url)
        create_connector_admin(work, ADMIN, ADMIN_PASSWORD)
        connector = start_connector_with_flags(work, demo_pki)
        started.append(connector)
        admin = login(connector.url, demo_pki)
        scene = Scene(tmp, demo_pki, cloud, cloud_db, connector, connector_id, admin)
        yield scene
        admin.close()
        started.append(scene.cloud)
    finally:
        for role in reversed(started):
            role.stop()
        cloud_db.dispose()


def status(scene: Scene) -> dict[str, Any]:
    response = scene.admin.get("/api/control")
    assert response.status_code == 200, response.text
    return dict(response.json())


def page(scene: Scene) -> str:
    response = scene.admin.get("/control")
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def test_channel_state_push_and_outage_on_page_and_api(scene: Scene) -> None:
    connected = wait_for(
        lambda: (
            (s := status(scene))["state"] == "connected"
            and s["last_heartbeat_acked"] is not None
            and s
        ),
        30,
        "the channel connected with a heartbeat acknowledged (every 2 s here)",
    )
    assert connected["installed_seq"] == connected["cloud_seq"] == 1
    assert connected["last_push"] is None and connected["alarms"] == []
    assert time.time() - connected["last_heartbeat_acked"] < 10
    text = page(scene)
    assert 'id="channel-state" class="badge ok">connected<' in text
    assert re.search(r'id="heartbeat-acked"><span title="[0-9-]+ [0-9:]+ UTC">', text), text
    assert "sequence 1" in text and "(cloud: 1)" in text
    assert 'id="no-push"' in text

    operator = portal(scene.cloud.url, scene.pki)
    upload(operator, pem(make_ca("Dashboard Test Root")))
    operator.close()
    pushed = wait_for(
        lambda: (s := status(scene))["last_push"] is not None and s,
        15,
        "the push to show in /api/control",
    )
    assert pushed["last_push"]["applied"] is True and pushed["last_push"]["sequence"] == 2
    assert pushed["last_push"]["reason"] is None and len(pushed["last_push"]["added"]) == 1
    assert pushed["installed_seq"] == 2
    text = page(scene)
    assert 'id="push-seq">2<' in text and 'class="badge ok">applied<' in text

    # The cloud dies: the page says reconnecting, when the next attempt is due, and raises
    # the alarm after the configured second.
    scene.cloud.process.kill()
    scene.cloud.process.wait(10)
    offline = wait_for(
        lambda: (
            (s := status(scene))["state"] == "offline"
            and any(a.startswith("cloud unreachable") for a in s["alarms"])
            and s["next_attempt_at"] is not None
            and s
        ),
        20,
        "reconnecting with the unreachable alarm",
    )
    assert offline["attempt"] >= 1 and offline["last_error"]
    # The back-off's ceiling is 1 s (--reconnect-cap): the next attempt is within it.
    assert offline["next_attempt_at"] - time.time() <= 1.5
    text = page(scene)
    assert 'class="badge bad">reconnecting<' in text and 'id="next-attempt"' in text
    assert "cloud unreachable for" in text and "Last error" in text
    assert offline["installed_seq"] == 2, "the last good list stays installed"

    port = int(scene.cloud.url.rsplit(":", 1)[1])
    scene.cloud = start_cloud(scene.tmp, scene.pki, port=port, env={**os.environ, **CLOUD_ENV})
    back = wait_for(
        lambda: (s := status(scene))["state"] == "connected" and s,
        30,
        "the channel back after the restart",
    )
    assert back["alarms"] == [] and back["next_attempt_at"] is None
    assert back["connections"] == 2 and back["cloud_seq"] == 2


def test_channel_page_and_api_need_the_admin(scene: Scene) -> None:
    anonymous = httpx.Client(
        base_url=scene.connector.url,
        verify=ssl.create_default_context(cafile=str(scene.pki.root_ca)),
        timeout=30,
    )
    with anonymous:
        api = anonymous.get("/api/control")
        assert api.status_code == 401 and "login required" in api.text
        web = anonymous.get("/control")
        assert web.status_code == 303 and web.headers["location"] == "/login?next=%2Fcontrol"


def test_silent_channel_is_closed_by_the_liveness_sweep_beating_one_is_not(
    scene: Scene,
) -> None:
    """Heartbeat 2 s here: a channel silent for 3 x 2 + 10 s is closed (4408) by the hub's
    sweep; its twin, beating every 2 s on the same cloud at the same time, stays open."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url = scene.cloud.url.replace("https://", "wss://") + "/control"
    keys = cloud_keys(scene.pki, scene.tmp / "cloud", scene.cloud.url)
    silent, beating = enroll_in_cloud(scene.cloud_db, keys), enroll_in_cloud(scene.cloud_db, keys)
    beat = '{"type":"heartbeat","version":"test","installed_seq":null}'

    async def hold(enrolled: Enrolled, beats: bool) -> tuple[float, int | None, str]:
        started = time.monotonic()
        context = client_ssl(scene.pki, enrolled, scene.tmp)
        async with connect(url, ssl=context, compression=None) as websocket:
            await websocket.send(HELLO)
            try:
                while time.monotonic() - started < 28:
                    if beats:
                        await websocket.send(beat)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(websocket.recv(), 2)
            except ConnectionClosed as exc:
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
                return time.monotonic() - started, code, reason
        return time.monotonic() - started, None, "still open"

    async def both() -> list[tuple[float, int | None, str]]:
        return list(await asyncio.gather(hold(silent, False), hold(beating, True)))

    (closed_after, code, reason), (_, _, twin) = asyncio.run(both())
    assert (code, reason) == (4408, "no heartbeat in time")
    assert 16 <= closed_after < 26, closed_after
    assert twin == "still open"


def test_offline_alarm_flag_is_checked(tmp_path: Path) -> None:
    """A zero alarm delay is a usage error naming the value, before anything starts."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "hybridge", "connector", "serve", "--data-dir", str(tmp_path),
         "--cert", __file__, "--key", __file__, "--offline-alarm-after", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "offline alarm delay 0.0; 0 < seconds <= 2592000 (30 days)" in done.stderr
