"""The calendar connector end to end: ``hybridge cloud serve`` and ``hybridge connector
serve`` as real processes, the EWS emulator over TLS, nothing in between.

The tests of this module share one scene and run in order, like an admin's afternoon:
users enabled on the cloud are watched, a keyword meeting gets its join details once, a
removed keyword removes them, a disabled user is dropped and forgotten, a restart in the
middle misses nothing and duplicates nothing, and a rejected password pauses everything
with an alarm on both sides until the Exchange admin enters the new one. Every wait is
bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from calendar_link_stack import (
    NEW_PASSWORD,
    SVC_PASSWORD,
    CloudProcess,
    ConnectorAdmin,
    Ews,
    Portal,
    Scene,
    connector_admin,
    control_stack,
    mailbox,
    make_scene,
    portal,
    wait_for,
)

from hybridge.cloud.calendar_models import calendar_meeting
from hybridge.connector.demo_run import start_cloud
from hybridge.core.meetings import BEGIN_MARKER
from hybridge.demo.pki import DemoPki

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene(cloud: CloudProcess, demo_pki: DemoPki, ews: Ews) -> Iterator[Scene]:
    scene = make_scene(cloud.tmp, demo_pki, cloud.role, cloud.database, ews, "c1")
    scene.start_connector()
    try:
        yield scene
    finally:
        for role in reversed(scene.started):
            role.stop()


@pytest.fixture(scope="module")
def cloud_portal(scene: Scene) -> Iterator[Portal]:
    client = portal(scene.cloud.url, scene.pki)
    yield client
    client.client.close()


def admin(scene: Scene) -> ConnectorAdmin:
    assert scene.connector is not None
    return connector_admin(scene.connector.url, scene.pki)


def cloud_meetings(scene: Scene, name: str) -> list[Any]:
    with scene.cloud_db.transaction() as session:
        return list(
            session.execute(
                sa.select(calendar_meeting).where(calendar_meeting.c.mailbox == mailbox(name))
            ).all()
        )


def row(connector: ConnectorAdmin, name: str) -> dict[str, Any] | None:
    """The connector's view of one mailbox."""
    found = [m for m in connector.view()["mailboxes"] if m["mailbox"] == mailbox(name)]
    return found[0] if found else None


def last_sync(connector: ConnectorAdmin, name: str) -> str | None:
    found = row(connector, name)
    return None if found is None else found["last_sync"]


def block_count(scene: Scene, item_id: str) -> int:
    return scene.ews.body(item_id).count(BEGIN_MARKER)


def test_calendar_link_enabled_users_get_join_details_exactly_once(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    # The connector knows no user yet: the cloud has enabled nobody.
    wait_for(lambda: connector.view()["users"]["version"] is not None, 20, "the first list")
    assert connector.view()["mailboxes"] == []

    # The users poll is 600 s in this scene: only the control command can bring them in.
    cloud_portal.enable("alice", "bob")
    wait_for(
        lambda: connector.states() == {mailbox("alice"): "idle", mailbox("bob"): "idle"},
        30,
        "alice and bob watched and synced",
    )
    # "ok" reaches the portal once each user synced.
    wait_for(
        lambda: all(u["status"] == "ok" for u in cloud_portal.users().values()),
        20,
        "ok statuses on the cloud",
    )

    item = scene.ews.add("alice", "Planning @webex", body="Agenda: budget")
    wait_for(lambda: block_count(scene, item) == 1, 30, "join details in alice's invitation")
    listed = wait_for(
        lambda: [m for m in cloud_portal.meetings("alice") if m["meeting_id"] == item],
        20,
        "the meeting in the cloud's list",
    )
    assert listed[0]["keyword"] == "@webex" and listed[0]["join_url"].startswith("https://")
    body = scene.ews.body(item)
    assert "Agenda: budget" in body  # the organizer's text is kept
    assert listed[0]["join_url"] in body

    # Our own write comes back as a change, and polls keep running: still exactly one block,
    # and one meeting in the cloud's list.
    synced = wait_for(lambda: last_sync(connector, "alice"), 10, "a recorded sync")
    wait_for(lambda: last_sync(connector, "alice") != synced, 15, "another poll of alice")
    assert block_count(scene, item) == 1
    assert len(cloud_meetings(scene, "alice")) == 1
    view = connector.view()
    alice = next(m for m in view["mailboxes"] if m["mailbox"] == mailbox("alice"))
    assert (alice["meetings"], alice["keyword_meetings"]) == (1, 1)
    assert view["alarms"] == []


def test_calendar_link_removed_keyword_removes_the_details(
    scene: Scene, cloud_portal: Portal
) -> None:
    item = scene.ews.add("alice", "Review @meet", body="Bring numbers")
    wait_for(lambda: block_count(scene, item) == 1, 30, "join details written")
    scene.ews.set_subject(item, "Review")
    wait_for(lambda: block_count(scene, item) == 0, 30, "join details removed")
    assert "Bring numbers" in scene.ews.body(item)
    listed = wait_for(
        lambda: [
            m
            for m in cloud_portal.meetings("alice")
            if m["meeting_id"] == item and m["keyword"] is None
        ],
        20,
        "the cloud's list without the keyword",
    )
    assert listed[0]["join_url"] is None


def test_calendar_link_disabled_user_is_dropped_and_forgotten(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    item = scene.ews.add("bob", "Bob's sync @webex")
    wait_for(lambda: len(cloud_meetings(scene, "bob")) == 1, 30, "bob's meeting in the cloud")
    wait_for(lambda: block_count(scene, item) == 1, 30, "bob's join details")

    cloud_portal.disable("bob")
    wait_for(lambda: set(connector.states()) == {mailbox("alice")}, 20, "bob no longer watched")
    assert cloud_meetings(scene, "bob") == []
    # A change in bob's mailbox now reaches nobody.
    later = scene.ews.add("bob", "After removal @webex")
    scene.ews.add("alice", "Nudge alice")  # a change that makes alice's sync run again
    wait_for(lambda: len(cloud_meetings(scene, "alice")) == 3, 30, "alice's third meeting")
    assert cloud_meetings(scene, "bob") == []
    assert block_count(scene, later) == 0


def test_calendar_link_denied_user_is_in_error_on_both_sides(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    cloud_portal.enable("carol")
    carol = wait_for(
        lambda: (m := row(connector, "carol")) is not None and m["state"] == "error" and m,
        30,
        "carol in error",
    )
    assert "refused impersonation of 'carol@contoso.test'" in carol["reason"]
    assert "ErrorImpersonateUserDenied" in carol["reason"]
    shown = wait_for(
        lambda: (u := cloud_portal.users()[mailbox("carol")])["status"] == "error" and u,
        20,
        "carol's error on the cloud portal",
    )
    assert shown["reason"] == carol["reason"]
    # The others are not held back by her.
    assert connector.states()[mailbox("alice")] == "idle"
    cloud_portal.disable("carol")
    wait_for(lambda: set(connector.states()) == {mailbox("alice")}, 20, "carol dropped")


def test_calendar_link_restart_misses_nothing_and_duplicates_nothing(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    wait_for(lambda: connector.states() == {mailbox("alice"): "idle"}, 20, "alice idle")
    before = {r.meeting_id: r.version for r in cloud_meetings(scene, "alice")}
    scene.stop_connector()
    # Changes while the connector is down.
    added = scene.ews.add("alice", "While down @webex")
    changed = next(m for m in before if block_count(scene, m) == 0)
    scene.ews.set_subject(changed, "Now with @webex")
    scene.start_connector()
    connector = admin(scene)

    wait_for(lambda: block_count(scene, added) == 1, 40, "the new meeting's details")
    wait_for(lambda: block_count(scene, changed) == 1, 40, "the changed meeting's details")
    rows = cloud_meetings(scene, "alice")
    assert {r.meeting_id for r in rows} == set(before) | {added}
    assert len(rows) == len(before) + 1
    # The restarted connector kept the user list (no cloud round-trip was needed for it).
    assert set(connector.states()) == {mailbox("alice")}
    assert all(block_count(scene, m) <= 1 for m in (*before, added))


def test_calendar_link_cloud_outage_keeps_every_mailbox_and_loses_nothing(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    wait_for(lambda: connector.states() == {mailbox("alice"): "idle"}, 20, "alice idle")
    port = int(scene.cloud.url.rsplit(":", 1)[1])
    scene.cloud.stop()
    item = scene.ews.add("alice", "During the outage @webex")
    # The meeting cannot reach the cloud: that mailbox backs off with the reason, and the
    # user list (asked again at once) fails too; alice stays watched all along.
    connector.client.post("/api/calendar/refresh", headers={"X-CSRF-Token": connector.token()})
    view = wait_for(
        lambda: (
            (v := connector.view())["users"]["last_error"]
            and v["mailboxes"][0]["state"] == "backoff"
            and v
        ),
        30,
        "the outage seen",
    )
    assert [m["mailbox"] for m in view["mailboxes"]] == [mailbox("alice")]
    assert "cannot reach the cloud" in view["users"]["last_error"]
    assert "cannot reach the cloud" in view["mailboxes"][0]["reason"]
    assert block_count(scene, item) == 0  # no details without the cloud's answer

    scene.cloud = start_cloud(
        scene.tmp, scene.pki, port=port, env={**os.environ, **control_stack().CLOUD_ENV}
    )
    scene.started.append(scene.cloud)
    wait_for(lambda: block_count(scene, item) == 1, 40, "the meeting delivered after the outage")
    assert item in {r.meeting_id for r in cloud_meetings(scene, "alice")}
    wait_for(lambda: connector.view()["users"]["last_error"] is None, 30, "the list asked again")
    assert set(connector.states()) == {mailbox("alice")}


def test_calendar_link_rejected_password_pauses_with_an_alarm_on_both_sides(
    scene: Scene, cloud_portal: Portal
) -> None:
    connector = admin(scene)
    directory = scene.ews.emulator.directory
    directory.update_account("svc@contoso.test", password_expired=True)
    scene.ews.add("alice", "Poke")  # anything: the next sync meets the 401
    view = wait_for(
        lambda: (v := connector.view())["state"] == "paused" and v,
        30,
        "the configuration paused",
    )
    codes = [a["code"] for a in view["alarms"]]
    assert codes == ["impersonation_password_rejected"]
    assert "rejected, often because it expired" in view["alarms"][0]["message"]
    # The EWS remedy, not Graph's: the password and the link, no client secret.
    assert "impersonation password" in view["alarms"][0]["message"]
    assert "credential-entry link" in view["alarms"][0]["message"]
    assert "client secret" not in view["alarms"][0]["message"]
    assert {m["state"] for m in view["mailboxes"]} == {"paused"}
    page = connector.client.get("/calendar")
    assert page.status_code == 200
    assert 'data-alarm="impersonation_password_rejected"' in page.text
    assert "rejected, often because it expired" in page.text
    assert NEW_PASSWORD not in page.text
    wait_for(
        lambda: cloud_portal.users()[mailbox("alice")]["status"] == "paused",
        20,
        "paused on the cloud portal",
    )
    assert "rejected, often because it expired" in cloud_portal.users()[mailbox("alice")]["reason"]
    assert "/calendar/resume" in page.text
    # The connector's heartbeat carries the alarm to the cloud's connectors page too.
    wait_for(
        lambda: (
            "calendar: The impersonation password was rejected, often because it expired"
            in cloud_portal.client.get("/connectors").text
        ),
        20,
        "the alarm on the cloud's connectors page",
    )

    # The Exchange admin renews the same password: the connector admin resumes by hand.
    directory.update_account("svc@contoso.test", password_expired=False)
    resumed = connector.client.post(
        "/api/calendar/resume", headers={"X-CSRF-Token": connector.token()}
    )
    assert resumed.status_code == 202
    wait_for(
        lambda: (v := connector.view())["state"] == "running" and not v["alarms"],
        30,
        "running after the resume",
    )
    wait_for(
        lambda: cloud_portal.users()[mailbox("alice")]["status"] == "ok", 30, "ok after resume"
    )

    # It expires again; this time the Exchange admin sets a new password and the
    # connector admin stores it: that alone restarts the sync.
    directory.update_account("svc@contoso.test", password_expired=True)
    scene.ews.add("alice", "Poke again")
    wait_for(lambda: connector.view()["state"] == "paused", 30, "paused again")
    directory.update_account("svc@contoso.test", password_expired=False, password=NEW_PASSWORD)
    response = connector.client.put(
        f"/api/exchange/configs/{scene.config_id}",
        json={
            "config": {
                "display_name": "Contoso",
                "username": "CONTOSO\\svc-hybridge",
                "test_mailbox": mailbox("alice"),
                "ews_url": scene.ews.emulator.ews_url,
                "auth": "Basic",
            },
            "password": NEW_PASSWORD,
        },
        headers={"X-CSRF-Token": connector.token()},
    )
    assert response.status_code == 200, response.text
    wait_for(
        lambda: (v := connector.view())["state"] == "running" and not v["alarms"],
        30,
        "running again, alarm cleared",
    )
    wait_for(
        lambda: cloud_portal.users()[mailbox("alice")]["status"] == "ok", 30, "ok on the cloud"
    )
    item = scene.ews.add("alice", "After the new password @webex")
    wait_for(lambda: block_count(scene, item) == 1, 30, "join details again")
    # The password went to the vault and to Exchange, nowhere else: not to a log line, the
    # page or the API.
    logged = scene.connector.log_text() if scene.connector else ""
    for secret in (SVC_PASSWORD, NEW_PASSWORD):
        assert secret not in logged
        assert secret not in connector.client.get("/calendar").text
        assert secret not in connector.client.get("/api/calendar").text
