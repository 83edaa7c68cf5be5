"""The calendar connector on Exchange Online: ``hybridge cloud serve`` and ``hybridge
connector serve`` as real processes, the Graph emulator over TLS on 127.0.0.1.

The connector's admin saves a Microsoft Graph configuration (tenant, app, client secret,
the emulator as authority and Graph URL) through the connector's own JSON API; the running
connector picks it up, the cloud enables a user, and a ``@webex`` meeting created in the
emulator gets its join details written back exactly once. The client secret is then
searched for in the connector's log, API and pages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from calendar_link_stack import (
    ADMIN,
    ADMIN_PASSWORD,
    CALENDAR_ENV,
    CloudProcess,
    ConnectorAdmin,
    Portal,
    connector_admin,
    control_stack,
    mailbox,
    portal,
    wait_for,
)

from hybridge.connector.demo_run import RoleProcess, create_connector_admin, start_connector
from hybridge.core.meetings import BEGIN_MARKER
from hybridge.demo.pki import DemoPki
from hybridge.testing.graph import (
    CALENDARS_READWRITE,
    MAILBOX_SETTINGS_READ,
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    RoleAssignment,
)
from hybridge.truststore.interfaces import CertificateSource

pytestmark = pytest.mark.slow

TENANT = "8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f"
CLIENT = "3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c"
SECRET = "E2e~graph-client-secret.value_98765zyxw"
#: The app's second secret (Entra lets an app hold two while one is rotated).
ROTATED = "E2e~graph-rotated-secret.value_4321abcd"


@dataclass
class Tenant:
    emulator: GraphEmulator
    ca_pem: bytes


@dataclass
class GraphScene:
    emulator: GraphEmulator
    config_id: str | None
    connector: RoleProcess
    admin: ConnectorAdmin
    portal: Portal


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    ca = trustme.CA(organization_name="Contoso Online Test CA")
    d = tmp_path_factory.mktemp("calendar-link-graph")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    users = ("alice", "bob")
    config = GraphTenantConfig(
        tenant_id=TENANT,
        apps=(AppRegistration(CLIENT, secrets=(SECRET, ROTATED)),),
        mailboxes=tuple(Mailbox(mailbox(u)) for u in users),
        assignments=(
            RoleAssignment(CLIENT, CALENDARS_READWRITE),
            RoleAssignment(CLIENT, MAILBOX_SETTINGS_READ),
        ),
    )
    with GraphEmulator(config, cert_file=d / "cert.pem", key_file=d / "key.pem") as em:
        yield Tenant(em, (d / "ca.pem").read_bytes())


@pytest.fixture(scope="module")
def scene(cloud: CloudProcess, demo_pki: DemoPki, tenant: Tenant) -> Iterator[GraphScene]:
    cs = control_stack()
    keys = cs.cloud_keys(demo_pki, cloud.tmp / "cloud", cloud.role.url)
    enrolled = cs.enroll_in_cloud(cloud.database, keys)
    work: Path = cloud.tmp / "graph"
    node = cs.open_node(work / "connector", demo_pki)
    try:
        cs.install_registration(node, enrolled, keys, cloud.database, cloud_url=cloud.role.url)
        # The emulator's CA as a manual anchor: Graph is verified by the platform set.
        node.store.add_manual(
            [CertificateSource("graph-ca.pem", tenant.ca_pem)],
            actor="admin",
        )
    finally:
        node.close()
    create_connector_admin(work, ADMIN, ADMIN_PASSWORD)
    env = {**os.environ, **cs.CONNECTOR_ENV, **CALENDAR_ENV}
    connector = start_connector(work, demo_pki, env=env)
    admin = connector_admin(connector.url, demo_pki)
    cloud_portal = portal(cloud.role.url, demo_pki)
    try:
        yield GraphScene(tenant.emulator, None, connector, admin, cloud_portal)
    finally:
        cloud_portal.client.close()
        admin.client.close()
        connector.stop()


def save(scene: GraphScene, secret: str, config_id: str | None = None, **extra: Any) -> Any:
    """POST (create) or PUT (``config_id``) the configuration through the connector's API."""
    em = scene.emulator
    return scene.admin.client.request(
        "POST" if config_id is None else "PUT",
        "/api/exchange/graph/configs" + ("" if config_id is None else f"/{config_id}"),
        json={
            "config": {
                "display_name": "Contoso Online",
                "tenant_id": TENANT,
                "client_id": CLIENT,
                "test_mailbox": mailbox("alice"),
                "authority_host": em.base_url,
                "graph_url": em.graph_url,
            },
            "client_secret": secret,
            **extra,
        },
        headers={"X-CSRF-Token": scene.admin.token()},
    )


def body_of(scene: GraphScene, event_id: str) -> str:
    return scene.emulator.event(event_id).body


def test_graph_wrong_secret_is_refused_by_the_running_connector(scene: GraphScene) -> None:
    response = save(scene, "not-the-secret")
    assert response.status_code == 422, response.text
    assert response.json()["test"]["code"] == "credentials_rejected"
    listed = scene.admin.client.get("/api/exchange/graph/configs").json()
    assert listed == {"configs": []}
    assert scene.admin.view()["state"] == "no_configuration"


def test_graph_webex_meeting_gets_join_details_exactly_once(scene: GraphScene) -> None:
    response = save(scene, SECRET)
    assert response.status_code == 201, response.text
    assert response.json()["test"]["code"] == "ok"
    scene.config_id = response.json()["config"]["id"]
    connector = scene.admin
    wait_for(lambda: connector.view()["state"] == "running", 30, "the engine on Graph")
    assert connector.view()["configuration"]["display_name"] == "Contoso Online"

    scene.portal.enable("alice")
    wait_for(lambda: connector.states() == {mailbox("alice"): "idle"}, 30, "alice synced")

    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    event_id = scene.emulator.add_event(
        mailbox("alice"),
        "Planning @webex",
        start=start,
        end=start + dt.timedelta(hours=1),
        body="Agenda: budget",
    )
    wait_for(
        lambda: body_of(scene, event_id).count(BEGIN_MARKER) == 1,
        40,
        "join details in alice's event",
    )
    listed = wait_for(
        lambda: [m for m in scene.portal.meetings("alice") if m["subject"] == "Planning @webex"],
        20,
        "the meeting in the cloud's list",
    )
    assert listed[0]["keyword"] == "@webex" and listed[0]["join_url"].startswith("https://")
    body = body_of(scene, event_id)
    assert "Agenda: budget" in body and listed[0]["join_url"] in body

    # Our own PATCH comes back through the delta query, and polls go on: still one block,
    # written by exactly one PATCH, and one meeting in the cloud's list.
    patches = [r for r in scene.emulator.requests if r[0] == "PATCH" and event_id in r[1]]
    assert len(patches) == 1
    seen = len(scene.emulator.requests)
    wait_for(
        lambda: sum(1 for r in scene.emulator.requests[seen:] if "calendarView/delta" in r[1]) >= 2,
        20,
        "two more delta polls of alice",
    )
    assert body_of(scene, event_id).count(BEGIN_MARKER) == 1
    assert len([r for r in scene.emulator.requests if r[0] == "PATCH" and event_id in r[1]]) == 1
    assert len(scene.portal.meetings("alice")) == 1
    assert connector.view()["alarms"] == []


def test_graph_secret_never_appears_in_api_pages_or_log(scene: GraphScene) -> None:
    client = scene.admin.client
    configs = client.get("/api/exchange/graph/configs").json()["configs"]
    assert len(configs) == 1 and configs[0]["client_secret"]["set"] is True
    texts = [
        client.get(path).text
        for path in (
            "/exchange",
            f"/exchange/graph/{configs[0]['id']}",
            f"/api/exchange/graph/configs/{configs[0]['id']}",
            "/api/exchange/export",
            "/api/calendar",
        )
    ]
    log = scene.connector.log_text()
    assert "graph.saved" in log  # the log holds the save, so searching it means something
    for text in (*texts, log):
        assert SECRET not in text and ROTATED not in text
        assert "not-the-secret" not in text


def test_graph_new_secret_restarts_the_engine_and_sync_goes_on(scene: GraphScene) -> None:
    assert scene.config_id is not None
    connector = scene.admin
    before = scene.connector.log_text().count("connector.calendar_engine_started")
    response = save(scene, ROTATED, config_id=scene.config_id)
    assert response.status_code == 200, response.text
    assert response.json()["config"]["client_secret"]["version"] == 2
    wait_for(
        lambda: scene.connector.log_text().count("connector.calendar_engine_started") > before,
        30,
        "the engine restarted with the new secret",
    )
    assert "the Exchange configuration changed" in scene.connector.log_text()
    wait_for(lambda: connector.view()["state"] == "running", 30, "running again")
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    event_id = scene.emulator.add_event(
        mailbox("alice"), "After rotation @webex", start=start, end=start + dt.timedelta(hours=1)
    )
    wait_for(
        lambda: body_of(scene, event_id).count(BEGIN_MARKER) == 1,
        40,
        "join details after the restart",
    )
    assert ROTATED not in scene.connector.log_text()


def test_graph_revoked_secret_pauses_with_the_client_secret_alarm(scene: GraphScene) -> None:
    """Entra ID stops accepting the secret in use (it expired): the running connector says
    the *client secret* was rejected and how to enter a new one, not the EWS password text."""
    assert scene.config_id is not None
    em, connector = scene.emulator, scene.admin
    identity = em.identity
    original = identity.config
    # The app keeps only its first secret: the rotated one the connector uses "expired".
    identity.config = dataclasses.replace(
        original, apps=(AppRegistration(CLIENT, secrets=(SECRET,)),)
    )
    try:
        em.expire_issued_tokens()  # the cached token dies: msal must present the secret
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
        em.add_event(mailbox("alice"), "Poke", start=start, end=start + dt.timedelta(hours=1))
        view = wait_for(
            lambda: (v := connector.view())["state"] == "paused" and v,
            40,
            "the Graph configuration paused",
        )
        assert [a["code"] for a in view["alarms"]] == ["client_secret_rejected"]
        message = view["alarms"][0]["message"]
        assert message.startswith("The application's client secret was rejected")
        assert "expired" in message and "expiry date" in message
        assert f"hybridge connector calendar graph set --id {scene.config_id}" in message
        assert f"/exchange/graph/{scene.config_id}" in message
        assert "AADSTS7000215" in message  # the identity platform's own reason, kept
        # The rejecting twin: none of the EWS remedy, and no secret in any of it.
        assert "impersonation" not in message and "credential-entry link" not in message
        assert view["detail"].startswith("The application's client secret was rejected")
        assert {m["state"] for m in view["mailboxes"]} == {"paused"}
        page = connector.client.get("/calendar").text
        assert 'data-alarm="client_secret_rejected"' in page
        assert 'data-alarm="impersonation_password_rejected"' not in page
        wait_for(
            lambda: (
                "client secret was rejected" in scene.portal.users()[mailbox("alice")]["reason"]
            ),
            20,
            "the reason on the cloud portal",
        )
        for text in (message, page, scene.connector.log_text()):
            assert SECRET not in text and ROTATED not in text
    finally:
        identity.config = original
    # The admin enters a valid secret: the engine restarts and the alarm is gone.
    response = save(scene, SECRET, config_id=scene.config_id)
    assert response.status_code == 200, response.text
    wait_for(lambda: connector.view()["alarms"] == [], 30, "the alarm cleared")
    wait_for(lambda: connector.view()["state"] == "running", 30, "running again")
