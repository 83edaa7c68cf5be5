"""The connector's channel client against a scripted cloud: every refusal, exactly.

The peer is a real WebSocket server over real TLS (``websockets``, the demo cloud
certificate, client certificates required and checked against the demo connector CA) that
plays the cloud's side from a script: it signs manifests and commands with the demo
list-signing key (or another key, or for another connector) and records what the
connector answers. The connector side is the real ``ControlClient`` over a real trust
store, vault and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from control_stack import (
    ConnectorNode,
    Enrolled,
    cloud_keys,
    enroll_in_cloud,
    install_registration,
    make_ca,
    open_node,
    utc_now,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import ServerConnection, serve

from hybridge.cloud import calist
from hybridge.cloud.keys import CloudKeys
from hybridge.connector.control import ChannelSettings, ControlClient
from hybridge.core.control import (
    Backoff,
)
from hybridge.core.control_commands import (
    Command,
    sign_command,
)
from hybridge.core.manifest import CaListManifest, sign_manifest
from hybridge.demo.pki import DemoPki
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.truststore import TrustUse
from hybridge.truststore.interfaces import CertificateSource

ISSUER = "https://localhost"


@dataclass
class Scene:
    """A registered connector node and the cloud-side material to script its peer."""

    pki: DemoPki
    node: ConnectorNode
    enrolled: Enrolled
    keys: CloudKeys
    tmp: Path

    @property
    def connector_id(self) -> str:
        return self.enrolled.connector_id

    def manifest(
        self,
        certs: list[x509.Certificate] | None = None,
        *,
        sequence: int = 2,
        audience: str | bool | None = True,
        key: Ed25519PrivateKey | None = None,
    ) -> str:
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in (certs or []))
        if not ders:
            ders = tuple(a.public_bytes(serialization.Encoding.DER) for a in self.platform())
        aud = self.connector_id if audience is True else (audience or None)
        manifest = CaListManifest(ISSUER, sequence, int(utc_now().timestamp()), ders, aud)  # type: ignore[arg-type]
        return sign_manifest(manifest, key or self.keys.list_signing_key)

    def command(self, name: str, command_id: int, *, key: Ed25519PrivateKey | None = None) -> str:
        command = Command(ISSUER, self.connector_id, command_id, name, int(utc_now().timestamp()))
        return sign_command(command, key or self.keys.list_signing_key)

    def platform(self) -> tuple[x509.Certificate, ...]:
        return self.node.store.anchors_for(TrustUse.PLATFORM)


@pytest.fixture(scope="module")
def cloud_side(
    tmp_path_factory: pytest.TempPathFactory, demo_pki: DemoPki
) -> Iterator[tuple[Database, CloudKeys]]:
    """The cloud's database (CA list version 1 = the demo roots) and keys, for the module."""
    tmp = tmp_path_factory.mktemp("scripted-cloud")
    cloud_db = open_database(sqlite_url(tmp / "cloud.db"), "cloud")
    keys = cloud_keys(demo_pki, tmp / "cloud", ISSUER)
    roots = x509.load_pem_x509_certificates(demo_pki.cloud_ca_roots.read_bytes())
    with cloud_db.transaction() as session:
        calist.seed_default(session, roots, keys, ISSUER, utc_now())
    yield cloud_db, keys
    cloud_db.dispose()


@pytest.fixture
def scene(
    tmp_path: Path, demo_pki: DemoPki, cloud_side: tuple[Database, CloudKeys]
) -> Iterator[Scene]:
    cloud_db, keys = cloud_side
    enrolled = enroll_in_cloud(cloud_db, keys)
    node = open_node(tmp_path / "connector", demo_pki)
    install_registration(
        node, enrolled, keys, cloud_db, cloud_url=ISSUER, control_url="wss://placeholder"
    )
    yield Scene(demo_pki, node, enrolled, keys, tmp_path)
    node.close()


Script = Callable[[ServerConnection, "asyncio.Queue[str]"], Awaitable[None]]


def _server_context(pki: DemoPki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.cloud_cert), str(pki.cloud_key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(pki.connector_ca_cert))
    return context


def run_scene(scene: Scene, script: Script, *, host: str = "127.0.0.1") -> list[str]:
    """Serve ``script`` on ``host``, point the connector at it, return what it sent."""
    received: list[str] = []

    async def main() -> None:
        answers: asyncio.Queue[str] = asyncio.Queue()
        done = asyncio.Event()

        async def handler(websocket: ServerConnection) -> None:
            if done.is_set():  # a reconnect after the script: not part of the scene
                return
            hello = await websocket.recv()
            received.append(str(hello))
            await websocket.send(
                '{"type":"welcome","heartbeat_interval":30,"current_seq":1,'
                f'"connector_id":"{scene.connector_id}"}}'
            )

            async def pump() -> None:
                async for frame in websocket:
                    received.append(str(frame))
                    await answers.put(str(frame))

            pumping = asyncio.create_task(pump())
            try:
                await script(websocket, answers)
            finally:
                pumping.cancel()
                done.set()

        async with serve(handler, host, 0, ssl=_server_context(scene.pki)) as server:
            port = server.sockets[0].getsockname()[1]
            _point_at(scene, f"wss://{'localhost' if host == '127.0.0.1' else host}:{port}/control")
            client = ControlClient(
                store=scene.node.store,
                database=scene.node.database,
                credentials=scene.node.credentials,
                data_dir=scene.node.data_dir,
                clock=utc_now,
                settings=ChannelSettings(backoff=Backoff(0.05, 0.2), open_timeout=5),
            )
            task = asyncio.create_task(client.run())
            try:
                for _ in range(100):  # at most 5 s
                    if done.is_set() or (client.status.last_error and not received):
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            scene.__dict__["client"] = client

    asyncio.run(main())
    return received


def _point_at(scene: Scene, url: str) -> None:
    import sqlalchemy as sa

    from hybridge.connector.credentials import registration_table

    with scene.node.database.transaction() as session:
        session.execute(sa.update(registration_table).values(control_url=url))


def exchange(*frames: str, expect: int) -> Script:
    """A script sending ``frames`` then waiting for ``expect`` answers."""

    async def script(websocket: ServerConnection, answers: asyncio.Queue[str]) -> None:
        for frame in frames:
            await websocket.send(frame)
        for _ in range(expect):
            await asyncio.wait_for(answers.get(), 5)

    return script


def push(token: str) -> str:
    return '{"type":"push","manifest":"' + token + '"}'


def command(token: str) -> str:
    return '{"type":"command","token":"' + token + '"}'


def answers_of(received: list[str]) -> list[str]:
    return received[1:]  # received[0] is the hello


def test_hello_reports_installed_sequence_and_push_is_applied(scene: Scene) -> None:
    new_ca = make_ca("Scripted New Root")
    token = scene.manifest([*scene.platform(), new_ca])
    received = run_scene(scene, exchange(push(token), expect=1))
    assert received[0].startswith('{"type":"hello"') and '"installed_seq":1' in received[0]
    assert answers_of(received) == ['{"type":"ack","seq":2}']
    assert scene.node.store.installed_cloud_sequence() == 2
    assert new_ca in scene.platform()
    status = scene.__dict__["client"].status.view()
    assert status["last_push"]["applied"] is True and status["last_push"]["sequence"] == 2


def _refusal(received: list[str]) -> dict[str, Any]:
    import json

    (answer,) = answers_of(received)
    data: dict[str, Any] = json.loads(answer)
    assert data["type"] == "refusal", data
    return data


def _assert_unchanged(scene: Scene, before: tuple[x509.Certificate, ...]) -> None:
    assert scene.node.store.installed_cloud_sequence() == 1
    assert scene.platform() == before


def test_replayed_old_manifest_is_refused(scene: Scene) -> None:
    before = scene.platform()
    refusal = _refusal(run_scene(scene, exchange(push(scene.manifest(sequence=1)), expect=1)))
    assert (refusal["of"], refusal["reason"], refusal["seq"]) == ("push", "stale_sequence", 1)
    assert "sequence 1 is not above the installed 1" in refusal["detail"]
    _assert_unchanged(scene, before)


def test_manifest_signed_by_another_key_is_refused(scene: Scene) -> None:
    before = scene.platform()
    token = scene.manifest(key=Ed25519PrivateKey.generate())
    refusal = _refusal(run_scene(scene, exchange(push(token), expect=1)))
    assert refusal["reason"] == "bad_signature"
    assert "does not verify with list-signing key" in refusal["detail"]
    _assert_unchanged(scene, before)


def test_push_for_another_connector_is_refused(scene: Scene) -> None:
    before = scene.platform()
    token = scene.manifest(audience="00000000-0000-0000-0000-000000000000")
    refusal = _refusal(run_scene(scene, exchange(push(token), expect=1)))
    assert refusal["reason"] == "wrong_audience"
    assert "addressed to '00000000-0000-0000-0000-000000000000'" in refusal["detail"]
    _assert_unchanged(scene, before)


def test_unaddressed_broadcast_manifest_is_refused_on_the_channel(scene: Scene) -> None:
    before = scene.platform()
    refusal = _refusal(run_scene(scene, exchange(push(scene.manifest(audience=None)), expect=1)))
    assert refusal["reason"] == "wrong_audience"
    assert "names no connector" in refusal["detail"]
    _assert_unchanged(scene, before)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: make_ca("Scripted Expired Root", days=-1), "expired"),
        (lambda: make_ca("Scripted Leaf", ca=False), "not a CA"),
    ],
    ids=["expired", "not-a-ca"],
)
def test_bad_certificate_refuses_the_whole_manifest(
    scene: Scene, make: Callable[[], x509.Certificate], words: str
) -> None:
    before = scene.platform()
    token = scene.manifest([*before, make()])
    refusal = _refusal(run_scene(scene, exchange(push(token), expect=1)))
    assert (refusal["reason"], refusal["seq"]) == ("rejected_certificates", 2)
    assert words in refusal["detail"], refusal["detail"]
    _assert_unchanged(scene, before)
    assert scene.node.store.bundle_path.read_text() == scene.node.store.export_pem()


def test_ping_answers_and_replayed_or_unknown_commands_are_refused(scene: Scene) -> None:
    frames = (
        command(scene.command("ping", 5)),
        command(scene.command("ping", 5)),  # replay of the same id
        command(scene.command("format_disk", 6)),
        command(scene.command("ping", 7, key=Ed25519PrivateKey.generate())),
    )
    import json

    answers = [json.loads(a) for a in answers_of(run_scene(scene, exchange(*frames, expect=4)))]
    assert answers[0] == {"type": "pong", "command_id": 5}
    assert (answers[1]["of"], answers[1]["reason"]) == ("command", "replayed")
    assert answers[2]["reason"] == "unknown_command"
    assert "'format_disk'" in answers[2]["detail"]
    assert answers[3]["reason"] == "bad_signature"
    # The ledger survives the process: id 6 was refused unknown *after* being authentic,
    # so the next accepted id must be above 5 (the last one carried out).
    assert scene.__dict__["client"].ledger.last(scene.connector_id) == 5


def test_deregister_command_removes_cloud_anchors_and_credential(scene: Scene) -> None:
    manual = make_ca("Scripted Manual Root")
    scene.node.store.add_manual(
        [CertificateSource("manual.pem", manual.public_bytes(serialization.Encoding.PEM))],
        actor="admin",
    )
    received = run_scene(scene, exchange(command(scene.command("deregister", 1)), expect=1))
    assert answers_of(received) == ['{"type":"ack","command_id":1}']
    assert scene.node.credentials.current() is None
    assert scene.node.store.installed_cloud_sequence() is None
    assert scene.platform() == (manual,)


def test_cloud_not_chaining_to_platform_anchors_is_never_trusted_via_bootstrap(
    scene: Scene,
) -> None:
    # Replace the cloud set with an unrelated root: the demo root that issued the cloud's
    # certificate is now only a *bootstrap* anchor, which the channel must never use.
    scene.node.store.apply_cloud_set(
        [make_ca("Unrelated Root").public_bytes(serialization.Encoding.DER)],
        actor="test",
        sequence=5,
    )
    received = run_scene(scene, exchange(expect=0))
    assert received == []
    error = scene.__dict__["client"].status.last_error
    assert "certificate verify failed" in error, error


def test_cloud_certificate_for_another_name_is_refused_before_any_byte(scene: Scene) -> None:
    # 127.0.0.2 reaches the loopback too, but the demo cloud certificate does not name it:
    # OpenSSL's host check is off (hybridge.tls), so this is check_peer's refusal.
    received = run_scene(scene, exchange(expect=0), host="127.0.0.2")
    assert received == []
    error = scene.__dict__["client"].status.last_error
    assert "the cloud's certificate was refused: name_mismatch" in error, error


def test_unreachable_cloud_raises_the_alarm_and_keeps_the_last_good_list(scene: Scene) -> None:
    from hybridge.connector.demo_run import free_port

    before = scene.platform()
    _point_at(scene, f"wss://localhost:{free_port()}/control")  # nothing listens there
    client = ControlClient(
        store=scene.node.store,
        database=scene.node.database,
        credentials=scene.node.credentials,
        data_dir=scene.node.data_dir,
        clock=utc_now,
        settings=ChannelSettings(backoff=Backoff(0.05, 0.2), alarm_after=0.5),
    )

    async def main() -> list[float]:
        task = asyncio.create_task(client.run())
        attempts = []
        try:
            for _ in range(60):
                await asyncio.sleep(0.05)
                attempts.append(client.status.unreachable_since or 0.0)
                if client.status.alarms:
                    break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return attempts

    asyncio.run(main())
    assert client.status.state == "offline"
    assert "cannot open the control channel" in (client.status.last_error or "")
    (alarm,) = client.status.alarms
    assert alarm.startswith("cloud unreachable for ")
    # Nothing is dropped while the cloud is away.
    assert scene.platform() == before and scene.node.store.installed_cloud_sequence() == 1
