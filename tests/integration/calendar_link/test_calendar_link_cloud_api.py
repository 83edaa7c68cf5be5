"""The connector's calendar API client against the real cloud process: what it accepts and,
above all, what it refuses (an untrusted cloud, a deregistered connector, a 4xx that names
a field) with the exact reason. The client runs in this process over real mutual TLS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from calendar_link_stack import CloudProcess, control_stack, mailbox, portal

from hybridge.calendar.model import Meeting
from hybridge.calendar.sync import Alarm
from hybridge.connector.calendar_cloud import (
    CloudCalendarApi,
    CloudCalendarRefused,
    CloudCalendarUnavailable,
    UserList,
)
from hybridge.connector.calendar_link import CloudMeetingSink, LinkAlarms
from hybridge.connector.calendar_store import LinkStore
from hybridge.connector.cloudlink import ClientIdentity, CloudLink
from hybridge.connector.credentials import Registration
from hybridge.demo.pki import DemoPki
from hybridge.truststore.interfaces import CertificateSource

pytestmark = pytest.mark.slow


@dataclass
class Client:
    node: Any
    api: CloudCalendarApi
    connector_id: str


@pytest.fixture
def make_client(cloud: CloudProcess, demo_pki: DemoPki, tmp_path: Path) -> Iterator[Any]:
    cs = control_stack()
    made: list[Client] = []

    def factory(*, trust_mode: str = "auto", manual_ca: bytes | None = None) -> Client:
        keys = cs.cloud_keys(demo_pki, cloud.tmp / "cloud", cloud.role.url)
        enrolled = cs.enroll_in_cloud(cloud.database, keys, trust_mode=trust_mode)
        node = cs.open_node(tmp_path / f"node{len(made)}", demo_pki)
        if manual_ca is not None:
            node.store.add_manual([CertificateSource("other.pem", manual_ca)], actor="admin")
        cs.install_registration(
            node, enrolled, keys, cloud.database, cloud_url=cloud.role.url, trust_mode=trust_mode
        )

        def identity(registration: Registration) -> ClientIdentity:
            secret = node.credentials.key_for(registration)
            return ClientIdentity(registration.client_certificate_pem.encode(), secret.reveal())

        api = CloudCalendarApi(
            CloudLink(node.store, timeout=10), node.credentials.current, identity
        )
        client = Client(node, api, enrolled.connector_id)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.node.close()


def meeting(owner: str, subject: str) -> Meeting:
    start = dt.datetime(2027, 3, 1, 10, tzinfo=dt.UTC)
    return Meeting(
        mailbox=mailbox(owner),
        meeting_id="AAMk/id+1==",
        version="ck-1",
        organizer=mailbox(owner),
        subject=subject,
        start=start,
        end=start + dt.timedelta(hours=1),
        start_tz="UTC",
        end_tz="UTC",
    )


def test_calendar_link_api_lists_users_and_answers_unchanged(
    make_client: Any, cloud: CloudProcess, demo_pki: DemoPki
) -> None:
    client = make_client()
    admin = portal(cloud.role.url, demo_pki)
    admin.enable("carol")
    users = client.api.users(None)
    assert isinstance(users, UserList)
    assert mailbox("carol") in users.mailboxes
    # If-None-Match with the version just learned: 304, nothing to parse.
    assert client.api.users(users.version) is None
    # A meeting with an id that needs percent-encoding ('/', '+', '=') round-trips.
    assert client.api.put_meeting(meeting("carol", "Plain")) is None
    details = client.api.put_meeting(meeting("carol", "Now @webex"))
    assert details is not None and details.join_url.startswith("https://")
    assert client.api.put_meeting(meeting("carol", "Now @webex")) == details  # idempotent
    client.api.delete_meeting(mailbox("carol"), "AAMk/id+1==")
    admin.client.close()


def test_calendar_link_api_refuses_a_cloud_the_trust_store_does_not_vouch_for(
    make_client: Any, demo_pki: DemoPki
) -> None:
    # Manual mode with an unrelated CA: the platform set cannot verify the cloud. The
    # bootstrap set (the demo bundle) could, and must not be used for this (DESIGN.md §3.1).
    other = control_stack().make_ca("Some Other Root")
    from cryptography.hazmat.primitives import serialization

    client = make_client(
        trust_mode="manual", manual_ca=other.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CloudCalendarUnavailable) as refused:
        client.api.users(None)
    message = str(refused.value)
    assert "does not chain to the trust store (manual and cloud anchors)" in message
    assert "Hybridge Demo" in message  # names the CA that would be needed
    assert "upload that CA certificate on the trust page" in message


def test_calendar_link_api_refuses_for_a_deregistered_connector(
    make_client: Any, cloud: Any
) -> None:
    client = make_client()
    control_stack().set_status(cloud.database, client.connector_id, "deregistered")
    with pytest.raises(CloudCalendarRefused) as refused:
        client.api.users(None)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    assert "HTTP 403 forbidden" in str(refused.value)


def test_calendar_link_api_unregistered_connector_asks_nobody(
    tmp_path: Path, demo_pki: DemoPki
) -> None:
    node = control_stack().open_node(tmp_path / "lonely", demo_pki)
    try:
        api = CloudCalendarApi(CloudLink(node.store), node.credentials.current, lambda r: None)  # type: ignore[arg-type,return-value]
        with pytest.raises(CloudCalendarUnavailable) as refused:
            api.users(None)
        assert str(refused.value) == "this connector is not registered to a cloud"
    finally:
        node.close()


def test_calendar_link_sink_alarms_on_a_refused_field_and_not_on_a_disabled_user(
    make_client: Any, cloud: CloudProcess, demo_pki: DemoPki
) -> None:
    client = make_client()
    admin = portal(cloud.role.url, demo_pki)
    admin.enable("carol")
    alarms = LinkAlarms()
    unknown: list[bool] = []
    sink = CloudMeetingSink(
        client.api, LinkStore(client.node.database), alarms, lambda: unknown.append(True)
    )
    # A subject over the wire's 2,048 characters: the cloud names the field.
    with pytest.raises(CloudCalendarRefused) as refused:
        sink.meeting_changed(meeting("carol", "x" * 3000))
    assert refused.value.status == 413
    assert "subject" in refused.value.detail
    assert [a.code for a in alarms.active()] == ["cloud_refused"]
    assert alarms.active()[0] == Alarm("cloud_refused", str(refused.value))

    # A mailbox the cloud does not have enabled: 404, the user list is stale, no alarm.
    quiet = LinkAlarms()
    sink = CloudMeetingSink(
        client.api, LinkStore(client.node.database), quiet, lambda: unknown.append(True)
    )
    with pytest.raises(CloudCalendarRefused) as missing:
        sink.meeting_changed(meeting("dave", "Who?"))
    assert missing.value.status == 404
    assert quiet.active() == [] and unknown == [True]
    admin.client.close()
