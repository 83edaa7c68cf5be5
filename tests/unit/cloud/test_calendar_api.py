"""The connectors' calendar API on the real app and SQLite, and its refusals.

The TLS handshake is the integration test's business (tests/integration/cloud); here the
peer-certificate dependency is given real certificates issued by the cloud's connector CA.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from cloud_helpers import Cloud
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridge.calendar import wire
from hybridge.calendar.model import Attendee, Meeting, zone
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud import calendar_service as service
from hybridge.cloud.api import get_peer_certificate
from hybridge.cloud.connector_ca import issue_client_certificate
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import get_or_create_organisation

BERLIN = zone("Europe/Berlin")


def enroll(cloud: Cloud, org: str = "Acme", status: str = "active") -> tuple[str, x509.Certificate]:
    """A connector row of ``org`` and its client certificate from the real connector CA."""
    now = cloud.clock()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c.acme.test")]))
        .sign(key, hashes.SHA256())
    )
    connector_id = str(uuid.uuid4())
    cert = issue_client_certificate(
        cloud.services.keys, csr, connector_id, "c.acme.test", org, now, dt.timedelta(days=30)
    )
    with cloud.services.database.transaction() as db:
        org_id = get_or_create_organisation(db, org, now).id
        db.execute(
            sa.insert(connector).values(
                id=connector_id,
                org_id=org_id,
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
    return connector_id, cert


def org_id(cloud: Cloud, name: str) -> str:
    with cloud.services.database.transaction() as db:
        return get_or_create_organisation(db, name, cloud.clock()).id


def enable(cloud: Cloud, org: str, *mailboxes: str) -> int:
    with cloud.services.database.transaction() as db:
        change = service.add_users(
            db, org_id(cloud, org), [(m, m.split("@")[0]) for m in mailboxes], "t", cloud.clock()
        )
    return change.version


def as_connector(cloud: Cloud, cert: x509.Certificate | None) -> None:
    cloud.client.app.dependency_overrides[get_peer_certificate] = lambda: cert


def meeting(**over: Any) -> Meeting:
    fields: dict[str, Any] = {
        "mailbox": "alice@acme.test",
        "meeting_id": "AAMkAD/x+y=",
        "version": "ck1",
        "uid": "uid-1",
        "organizer": "alice@acme.test",
        "subject": "Review @webex",
        "start": dt.datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN),
        "end": dt.datetime(2026, 12, 1, 11, 0, tzinfo=BERLIN),
        "start_tz": "Europe/Berlin",
        "end_tz": "Europe/Berlin",
        "attendees": (Attendee("room1@acme.test", "resource"),),
    }
    fields.update(over)
    return Meeting(**fields)


def meeting_path(m: Meeting) -> str:
    return f"/api/calendar/meetings/{quote(m.mailbox)}/{quote(m.meeting_id, safe='')}"


def put(cloud: Cloud, m: Meeting, body: bytes | None = None) -> Any:
    return cloud.client.put(meeting_path(m), content=body or wire.dumps(wire.meeting_to_json(m)))


@pytest.fixture
def acme(cloud: Cloud) -> Cloud:
    _, cert = enroll(cloud)
    as_connector(cloud, cert)
    enable(cloud, "Acme", "alice@acme.test", "bob@acme.test")
    return cloud


def test_users_list_with_etag_and_304(acme: Cloud) -> None:
    response = acme.client.get("/api/calendar/users")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == {
        "version": 1,
        "users": [
            {"mailbox": "alice@acme.test", "display_name": "alice"},
            {"mailbox": "bob@acme.test", "display_name": "bob"},
        ],
    }
    same = acme.client.get("/api/calendar/users", headers={"If-None-Match": '"1"'})
    assert same.status_code == 304 and same.content == b""
    enable(acme, "Acme", "carol@acme.test")
    changed = acme.client.get("/api/calendar/users", headers={"If-None-Match": 'W/"1"'})
    assert changed.status_code == 200 and changed.json()["version"] == 2


def test_put_returns_join_details_and_is_idempotent(acme: Cloud) -> None:
    m = meeting()
    first = put(acme, m)
    assert first.status_code == 200, first.text
    details = wire.join_details_from_json(first.json()["join_details"])
    assert details.join_url.startswith("https://cloud.hybridge.test:8443/meet/j/")
    assert put(acme, m).json() == first.json()
    plain = put(acme, meeting(meeting_id="p1", uid="p1", subject="Lunch"))
    assert plain.json() == {"join_details": None}
    with acme.services.database.transaction() as db:
        listed = meeting_store.meetings_of(db, org_id(acme, "Acme"), "alice@acme.test")
    assert [v.meeting_id for v in listed] == ["AAMkAD/x+y=", "p1"]


def test_delete_retain_and_forget(acme: Cloud) -> None:
    for index in range(3):
        put(acme, meeting(meeting_id=f"m{index}", uid=f"u{index}"))
    assert acme.client.delete("/api/calendar/meetings/alice%40acme.test/m0").status_code == 204
    assert acme.client.delete("/api/calendar/meetings/alice%40acme.test/nope").status_code == 204
    retain = acme.client.post(
        "/api/calendar/meetings/alice@acme.test/retain", json={"meeting_ids": ["m2"]}
    )
    assert retain.status_code == 204
    with acme.services.database.transaction() as db:
        listed = meeting_store.meetings_of(db, org_id(acme, "Acme"), "alice@acme.test")
    assert [v.meeting_id for v in listed] == ["m2"]
    assert acme.client.delete("/api/calendar/meetings/alice@acme.test").status_code == 204
    with acme.services.database.transaction() as db:
        assert meeting_store.meetings_of(db, org_id(acme, "Acme"), "alice@acme.test") == []


def test_status_is_shown_per_user(acme: Cloud) -> None:
    body = wire.user_status_to_json(wire.StatusReport("paused", "impersonation password rejected"))
    response = acme.client.put("/api/calendar/users/alice@acme.test/status", json=body)
    assert response.status_code == 204
    with acme.services.database.transaction() as db:
        users = {u.mailbox: u for u in service.list_users(db, org_id(acme, "Acme"))}
    assert (users["alice@acme.test"].status, users["alice@acme.test"].reason) == (
        "paused",
        "impersonation password rejected",
    )
    assert users["bob@acme.test"].status == "pending"


def test_rooms_api_lists_the_meeting_with_its_details(acme: Cloud) -> None:
    details = put(acme, meeting()).json()["join_details"]
    response = acme.client.get(
        "/api/calendar/rooms/room1@acme.test/meetings",
        params={"from": "2026-12-01T00:00:00+00:00", "to": "2026-12-02T00:00:00+00:00"},
    )
    assert response.status_code == 200, response.text
    [found] = response.json()["meetings"]
    assert found["start"] == "2026-12-01T10:00:00+01:00" and found["join_details"] == details
    empty = acme.client.get(
        "/api/calendar/rooms/room1@acme.test/meetings",
        params={"from": "2026-12-02T00:00:00+00:00", "to": "2026-12-03T00:00:00+00:00"},
    )
    assert empty.json()["meetings"] == []
    naive = acme.client.get(
        "/api/calendar/rooms/room1@acme.test/meetings", params={"from": "2026-12-02T00:00:00"}
    )
    assert naive.status_code == 400 and naive.json()["field"] == "from"


# ---------------------------------------------------------------- refusals


def test_no_client_certificate_is_403(acme: Cloud) -> None:
    as_connector(acme, None)
    for response in (
        acme.client.get("/api/calendar/users"),
        put(acme, meeting()),
        acme.client.delete("/api/calendar/meetings/alice@acme.test"),
    ):
        assert response.status_code == 403
        assert response.json() == {
            "error": "forbidden",
            "detail": "a connector client certificate is required (mutual TLS)",
        }


@pytest.mark.parametrize("status", ["deregistered", "revoked"])
def test_inactive_connector_is_403(cloud: Cloud, status: str) -> None:
    connector_id, cert = enroll(cloud, status=status)
    enable(cloud, "Acme", "alice@acme.test")
    as_connector(cloud, cert)
    response = put(cloud, meeting())
    assert response.status_code == 403
    assert response.json()["detail"] == f"connector {connector_id!r} is {status}"


def test_other_organisations_mailbox_is_404(acme: Cloud) -> None:
    enable(acme, "Bravo", "zed@bravo.test")
    m = meeting(mailbox="zed@bravo.test", organizer="zed@bravo.test")
    for response in (
        put(acme, m),
        acme.client.put(
            "/api/calendar/users/zed@bravo.test/status",
            json=wire.user_status_to_json(wire.StatusReport("ok")),
        ),
        acme.client.post("/api/calendar/meetings/zed@bravo.test/retain", json={"meeting_ids": []}),
    ):
        assert response.status_code == 404, response.text
        assert response.json() == {
            "error": "not_found",
            "detail": "mailbox 'zed@bravo.test' is not an enabled user here",
        }
    # The same answer for a mailbox nobody enabled: nothing to learn about other tenants.
    unknown = put(acme, meeting(mailbox="ghost@acme.test", organizer="ghost@acme.test"))
    assert unknown.json()["detail"] == "mailbox 'ghost@acme.test' is not an enabled user here"
    # Bravo's connector sees Bravo's user, not Acme's.
    _, bravo_cert = enroll(acme, org="Bravo")
    as_connector(acme, bravo_cert)
    assert [u["mailbox"] for u in acme.client.get("/api/calendar/users").json()["users"]] == [
        "zed@bravo.test"
    ]
    assert put(acme, meeting()).status_code == 404


def test_bad_json_names_the_field(acme: Cloud) -> None:
    doc = wire.meeting_to_json(meeting())
    doc["start"] = "2026-12-01T10:00:00"
    response = put(acme, meeting(), json.dumps(doc).encode())
    assert response.status_code == 400
    assert response.json()["field"] == "start"
    assert "has no UTC offset" in response.json()["detail"]
    del doc["start"]
    assert put(acme, meeting(), json.dumps(doc).encode()).json()["field"] == "start"
    garbage = put(acme, meeting(), b"{not json")
    assert (garbage.status_code, garbage.json()["field"]) == (400, "(body)")
    bad_status = acme.client.put(
        "/api/calendar/users/alice@acme.test/status",
        json={"status": "sleeping", "reason": "", "out_of_office": None},
    )
    assert (bad_status.status_code, bad_status.json()["field"]) == (400, "status")
    bad_retain = acme.client.post(
        "/api/calendar/meetings/alice@acme.test/retain", json={"meeting_ids": "all"}
    )
    assert (bad_retain.status_code, bad_retain.json()["field"]) == (400, "meeting_ids")


def test_path_and_body_must_agree(acme: Cloud) -> None:
    m = meeting()
    body = wire.dumps(wire.meeting_to_json(m))
    wrong_box = acme.client.put(
        "/api/calendar/meetings/bob@acme.test/AAMkAD%2Fx%2By%3D", content=body
    )
    assert (wrong_box.status_code, wrong_box.json()["field"]) == (400, "mailbox")
    wrong_id = acme.client.put("/api/calendar/meetings/alice@acme.test/other", content=body)
    assert (wrong_id.status_code, wrong_id.json()["field"]) == (400, "meeting_id")
    bad_box = acme.client.put("/api/calendar/meetings/not-an-address/x", content=body)
    assert (bad_box.status_code, bad_box.json()["field"]) == (400, "mailbox")


def test_oversize_body_is_413(acme: Cloud) -> None:
    big = meeting(body="x" * wire.MAX_MEETING_BYTES)
    response = put(acme, big)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    # Without a Content-Length (chunked), the stream is cut at the limit all the same.
    chunks = iter([b"{" + b" " * (wire.MAX_MEETING_BYTES // 2)] * 3)
    streamed = acme.client.put(meeting_path(meeting()), content=chunks)
    assert streamed.status_code == 413
    # Just under the limit is fine.
    fits = meeting(body="x" * (wire.MAX_MEETING_BYTES - 2000))
    assert put(acme, fits).status_code == 200
