"""The calendar service of a real ``hybridge cloud serve`` over mutual TLS on loopback.

One cloud process for the module (demo PKI); connectors are enrolled the way the token
endpoint leaves them (a ``connector`` row and a client certificate from the real
connector CA), then talk to the cloud with httpx presenting that certificate. The
``calendar_users_changed`` command is read off a real ``/control`` WebSocket and verified
with the cloud's list-signing key, as a connector would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridge.calendar import wire
from hybridge.calendar.model import Attendee, Meeting, zone
from hybridge.cloud.connector_ca import issue_client_certificate
from hybridge.cloud.keys import CloudKeys, load_cloud_keys
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import create_org_admin, get_or_create_organisation
from hybridge.cloud.settings import CloudSettings
from hybridge.connector.demo_run import RoleProcess, start_cloud
from hybridge.core.control import CommandFrame, decode_cloud_message
from hybridge.core.control_commands import verify_command
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import Database, open_database, sqlite_url

pytestmark = pytest.mark.slow  # a real cloud process on loopback

ADMIN = "cal-admin@acme.test"
PASSWORD = "calendar integration password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HELLO = '{"type":"hello","version":"test","installed_seq":null}'


@dataclass
class Enrolled:
    connector_id: str
    cert: Path
    key: Path


@dataclass
class Stack:
    tmp: Path
    pki: DemoPki
    cloud: RoleProcess
    db: Database
    keys: CloudKeys

    def enroll(self, org: str = "Acme", *, status: str = "active", insert: bool = True) -> Enrolled:
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c.acme.test")]))
            .sign(key, hashes.SHA256())
        )
        connector_id = str(uuid.uuid4())
        cert = issue_client_certificate(
            self.keys, csr, connector_id, "c.acme.test", org, now, dt.timedelta(days=30)
        )
        if insert:
            with self.db.transaction() as session:
                session.execute(
                    sa.insert(connector).values(
                        id=connector_id,
                        org_id=get_or_create_organisation(session, org, now).id,
                        hostname="c.acme.test",
                        key_fp="0" * 64,
                        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                        certificate_serial=format(cert.serial_number, "x"),
                        trust_mode="auto",
                        status=status,
                        registered_at=now,
                        approved_by="test",
                    )
                )
        cert_path = self.tmp / f"{connector_id}.pem"
        key_path = self.tmp / f"{connector_id}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return Enrolled(connector_id, cert_path, key_path)

    def context(self, enrolled: Enrolled | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.root_ca))
        if enrolled is not None:
            context.load_cert_chain(str(enrolled.cert), str(enrolled.key))
        return context

    def client(self, enrolled: Enrolled | None) -> httpx.Client:
        return httpx.Client(base_url=self.cloud.url, verify=self.context(enrolled), timeout=30)

    def portal(self) -> httpx.Client:
        client = self.client(None)
        token = CSRF.findall(client.get("/login").text)[-1]
        response = client.post(
            "/login", data={"login": ADMIN, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 303, response.text
        return client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("calendar-serve")
    pki, _ = init_demo_pki(tmp / "pki")
    (tmp / "cloud").mkdir()
    db = open_database(sqlite_url(tmp / "cloud" / "cloud.db"), "cloud")
    with db.transaction() as session:
        create_org_admin(session, "Acme", ADMIN, PASSWORD, dt.datetime.now(dt.UTC))
    cloud = start_cloud(tmp, pki, env={**os.environ, "HYBRIDGE_CONTROL_HEARTBEAT": "2"})
    keys = load_cloud_keys(
        CloudSettings(
            data_dir=tmp / "cloud",
            base_url=cloud.url,
            server_cert=pki.cloud_cert,
            connector_ca_cert=pki.connector_ca_cert,
            connector_ca_key=pki.connector_ca_key,
            list_signing_key=pki.list_signing_key,
        )
    )
    try:
        yield Stack(tmp, pki, cloud, db, keys)
    finally:
        cloud.stop()
        db.dispose()


def meeting(mailbox: str, **over: Any) -> Meeting:
    berlin = zone("Europe/Berlin")
    fields: dict[str, Any] = {
        "mailbox": mailbox,
        "meeting_id": "AAMkAGI2/+item=",
        "version": "DwAAABYA",
        "uid": f"uid-{mailbox}",
        "organizer": mailbox,
        "subject": "Design review @webex:onetime",
        "start": dt.datetime(2026, 12, 3, 15, 0, tzinfo=berlin),
        "end": dt.datetime(2026, 12, 3, 16, 0, tzinfo=berlin),
        "start_tz": "Europe/Berlin",
        "end_tz": "Europe/Berlin",
        "attendees": (Attendee("room7@acme.test", "resource"),),
    }
    fields.update(over)
    return Meeting(**fields)


def path_of(m: Meeting) -> str:
    from urllib.parse import quote

    return f"/api/calendar/meetings/{quote(m.mailbox)}/{quote(m.meeting_id, safe='')}"


def enable(stack: Stack, portal: httpx.Client, text: str) -> httpx.Response:
    token = CSRF.findall(portal.get("/calendar").text)[-1]
    return portal.post("/calendar/users/paste", data={"users": text, "csrf_token": token})


async def next_command(stack: Stack, enrolled: Enrolled, after: Any) -> CommandFrame:
    """Open ``/control`` as ``enrolled``, call ``after()`` once welcomed, return the first
    command frame received (bounded by a timeout)."""
    from websockets.asyncio.client import connect

    url = stack.cloud.url.replace("https://", "wss://") + "/control"
    async with connect(url, ssl=stack.context(enrolled), open_timeout=10) as websocket:
        await websocket.send(HELLO)
        async with asyncio.timeout(20):
            while True:
                message = decode_cloud_message(await websocket.recv())
                if message.TYPE == "welcome":
                    await asyncio.to_thread(after)
                elif isinstance(message, CommandFrame):
                    return message


def test_users_change_sends_a_signed_command_over_the_control_channel(stack: Stack) -> None:
    enrolled = stack.enroll()
    portal = stack.portal()
    frame = asyncio.run(
        next_command(stack, enrolled, lambda: enable(stack, portal, "ann@acme.test"))
    )
    command = verify_command(
        frame.token,
        stack.keys.list_signing_key.public_key(),
        now=dt.datetime.now(dt.UTC),
        audience=enrolled.connector_id,
        last_command_id=None,
    )
    with stack.client(enrolled) as api:
        listed = api.get("/api/calendar/users")
    assert listed.status_code == 200
    version = listed.json()["version"]
    assert command.name == "calendar_users_changed"
    assert command.args == {"version": str(version)}
    assert "ann@acme.test" in [u["mailbox"] for u in listed.json()["users"]]
    with stack.client(enrolled) as api:
        same = api.get("/api/calendar/users", headers={"If-None-Match": f'"{version}"'})
    assert same.status_code == 304


def test_meeting_round_trip_over_mutual_tls(stack: Stack) -> None:
    enrolled = stack.enroll()
    portal = stack.portal()
    assert enable(stack, portal, "dora@acme.test, Dora").status_code == 200
    m = meeting("dora@acme.test")
    with stack.client(enrolled) as api:
        first = api.put(path_of(m), content=wire.dumps(wire.meeting_to_json(m)))
        assert first.status_code == 200, first.text
        details = wire.join_details_from_json(first.json()["join_details"])
        again = api.put(path_of(m), content=wire.dumps(wire.meeting_to_json(m)))
        assert again.json() == first.json()
        status = api.put(
            "/api/calendar/users/dora@acme.test/status",
            json=wire.user_status_to_json(
                wire.StatusReport("error", "ErrorImpersonateUserDenied for dora@acme.test")
            ),
        )
        assert status.status_code == 204
        rooms = api.get(
            "/api/calendar/rooms/room7@acme.test/meetings",
            params={"from": "2026-12-03T00:00:00+00:00", "to": "2026-12-04T00:00:00+00:00"},
        )
        assert rooms.json()["meetings"][0]["join_details"] == first.json()["join_details"]
    assert details.join_url.startswith(stack.cloud.url + "/meet/j/")
    meetings = portal.get("/calendar/users/dora@acme.test/meetings")
    assert details.join_url in meetings.text and "Design review" in meetings.text
    page = portal.get("/calendar")
    assert "ErrorImpersonateUserDenied for dora@acme.test" in page.text
    with stack.client(enrolled) as api:
        assert api.delete(path_of(m)).status_code == 204
    assert details.join_url not in portal.get("/calendar/users/dora@acme.test/meetings").text


def test_refusals_over_real_tls(stack: Stack) -> None:
    active = stack.enroll()
    stranger = stack.enroll(insert=False)
    leaver = stack.enroll(status="deregistered")
    revoked = stack.enroll(status="revoked")
    other = stack.enroll(org="Bravo")
    portal = stack.portal()
    enable(stack, portal, "eve@acme.test")
    m = meeting("eve@acme.test")
    body = wire.dumps(wire.meeting_to_json(m))
    with stack.client(None) as api:
        response = api.put(path_of(m), content=body)
        assert response.status_code == 403
        assert response.json() == {
            "error": "forbidden",
            "detail": "a connector client certificate is required (mutual TLS)",
        }
    for enrolled, reason in (
        (stranger, "unknown"),
        (leaver, "deregistered"),
        (revoked, "revoked"),
    ):
        with stack.client(enrolled) as api:
            response = api.put(path_of(m), content=body)
        assert response.status_code == 403
        assert response.json()["detail"] == f"connector {enrolled.connector_id!r} is {reason}"
    with stack.client(other) as api:
        response = api.put(path_of(m), content=body)
        assert response.status_code == 404
        assert response.json()["detail"] == "mailbox 'eve@acme.test' is not an enabled user here"
    with stack.client(active) as api:
        doc = wire.meeting_to_json(m)
        doc["attendees"][0]["role"] = "chair"
        bad = api.put(path_of(m), content=json.dumps(doc))
        assert (bad.status_code, bad.json()["field"]) == (400, "attendees[0].role")
        big = meeting("eve@acme.test", body="x" * (300 * 1024))
        too_big = api.put(path_of(big), content=wire.dumps(wire.meeting_to_json(big)))
        assert (too_big.status_code, too_big.json()["error"]) == (413, "too_large")
        assert api.put(path_of(m), content=body).status_code == 200


def test_portal_forms_refuse_a_missing_csrf_token(stack: Stack) -> None:
    portal = stack.portal()
    response = portal.post("/calendar/users/add", data={"mailbox": "mallory@acme.test"})
    assert response.status_code == 403
    assert "security token is missing or wrong" in response.text
    too_long = portal.post(
        "/calendar/template",
        data={
            "header": "h" * 1025,
            "footer": "",
            "csrf_token": CSRF.findall(portal.get("/calendar").text)[-1],
        },
    )
    assert too_long.status_code == 400
    assert "header has 1025 characters; at most 1024 are allowed" in too_long.text
    assert "mallory@acme.test" not in portal.get("/calendar").text
