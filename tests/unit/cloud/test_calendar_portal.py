"""The portal's Calendar pages and admin JSON API: forms with CSRF, tenancy, the command."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa
from cloud_helpers import PASSWORD, Cloud, csrf_of, login
from test_calendar_api import as_connector, enable, enroll, meeting, put

from hybridge.cloud.control_models import connector_channel
from hybridge.web.accounts import create_admin

TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


def command_count(cloud: Cloud, connector_id: str) -> int:
    with cloud.services.database.transaction() as db:
        value = db.execute(
            sa.select(connector_channel.c.last_command_id).where(
                connector_channel.c.connector_id == connector_id
            )
        ).scalar()
    return int(value or 0)


def form(cloud: Cloud, path: str, data: dict[str, str]) -> object:
    token = csrf_of(cloud.client.get("/calendar").text)
    return cloud.client.post(path, data={**data, "csrf_token": token})


def test_page_forms_all_carry_a_csrf_token(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    enable(cloud, "Acme", "alice@acme.test")
    page = cloud.client.get("/calendar")
    assert page.status_code == 200
    forms = page.text.count("<form ")
    tokens = TOKEN.findall(page.text)
    # Every form (logout, remove per user, add, paste, template) has a non-empty token.
    assert forms == len(tokens) == 5 and all(tokens)
    assert '<a href="/calendar">Calendar</a>' in page.text


def test_add_paste_remove_bump_the_version_and_command_connectors(cloud: Cloud) -> None:
    acme_connector, _ = enroll(cloud)
    gone_connector, _ = enroll(cloud, status="deregistered")
    bravo_connector, _ = enroll(cloud, org="Bravo")
    login(cloud.client, "alice@acme.test")
    added = form(
        cloud, "/calendar/users/add", {"mailbox": "Alice@Acme.test", "display_name": "Alice"}
    )
    assert added.status_code == 200
    assert "Enabled 1 user(s); users list version 1." in added.text
    assert 'data-mailbox="alice@acme.test"' in added.text
    assert command_count(cloud, acme_connector) == 1
    pasted = form(
        cloud,
        "/calendar/users/paste",
        {"users": "bob@acme.test, Bob\r\nCarol <carol@acme.test>\r\nalice@acme.test, Alice\r\n"},
    )
    assert "Enabled 2 user(s); users list version 2. Unchanged: alice@acme.test" in pasted.text
    removed = form(cloud, "/calendar/users/remove", {"mailbox": "bob@acme.test"})
    assert "Removed 1 user(s); users list version 3." in removed.text
    assert 'data-mailbox="bob@acme.test"' not in removed.text
    # Only Acme's active connector was told, once per change.
    assert command_count(cloud, acme_connector) == 3
    assert command_count(cloud, gone_connector) == 0
    assert command_count(cloud, bravo_connector) == 0
    # Removing someone who is not there changes nothing and tells nobody.
    form(cloud, "/calendar/users/remove", {"mailbox": "nobody@acme.test"})
    assert command_count(cloud, acme_connector) == 3


def test_bad_entries_are_refused_with_the_reason(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    bad = form(cloud, "/calendar/users/add", {"mailbox": "not an address"})
    assert bad.status_code == 400
    assert "&#39;not an address&#39; is not a mailbox address" in bad.text
    paste = form(cloud, "/calendar/users/paste", {"users": "a@acme.test\n\nb@@acme.test"})
    assert paste.status_code == 400 and "line 3" in paste.text


def test_forms_without_csrf_are_refused(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    for path, data in (
        ("/calendar/users/add", {"mailbox": "x@acme.test"}),
        ("/calendar/users/paste", {"users": "x@acme.test"}),
        ("/calendar/users/remove", {"mailbox": "x@acme.test"}),
        ("/calendar/template", {"header": "h", "footer": "f"}),
    ):
        response = cloud.client.post(path, data=data)
        assert response.status_code == 403, path
        assert "security token is missing or wrong" in response.text
    json_add = cloud.client.post(
        "/portal/api/calendar/users", json={"users": [{"mailbox": "x@acme.test"}]}
    )
    assert json_add.status_code == 403
    assert "security token" in json_add.json()["detail"]
    assert "x@acme.test" not in cloud.client.get("/calendar").text


def test_template_save_preview_and_limit(cloud: Cloud) -> None:
    login(cloud.client, "alice@acme.test")
    preview = form(
        cloud, "/calendar/template", {"header": "Hi\r\nthere", "footer": "Bye", "action": "preview"}
    )
    assert preview.status_code == 200 and "Preview only: not saved yet." in preview.text
    assert "Hi\nthere\nJoin the meeting: https://cloud.hybridge.test:8443/meet/j/" in html.unescape(
        preview.text
    )
    assert cloud.client.get("/portal/api/calendar/template").json()["header"] == ""
    saved = form(cloud, "/calendar/template", {"header": "Hi", "footer": "Bye"})
    assert "Template saved" in saved.text
    too_long = form(cloud, "/calendar/template", {"header": "h" * 1025, "footer": ""})
    assert too_long.status_code == 400
    assert "header has 1025 characters; at most 1024 are allowed" in too_long.text
    # The refused text is shown back to be shortened; the saved template is untouched.
    assert "h" * 1025 in too_long.text
    assert cloud.client.get("/portal/api/calendar/template").json()["header"] == "Hi"


def test_json_api_with_header_token(cloud: Cloud) -> None:
    connector_id, cert = enroll(cloud)
    login(cloud.client, "alice@acme.test")
    token = csrf_of(cloud.client.get("/calendar").text)
    headers = {"X-CSRF-Token": token}
    added = cloud.client.post(
        "/portal/api/calendar/users",
        json={"users": [{"mailbox": "alice@acme.test", "display_name": "Alice"}]},
        headers=headers,
    )
    assert added.json() == {"version": 1, "changed": ["alice@acme.test"], "unchanged": []}
    assert command_count(cloud, connector_id) == 1
    bad = cloud.client.post(
        "/portal/api/calendar/users", json={"users": [{"mailbox": 7}]}, headers=headers
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "users[0].mailbox")
    template = cloud.client.put(
        "/portal/api/calendar/template", json={"header": "H", "footer": "x" * 1025}, headers=headers
    )
    assert (template.status_code, template.json()["field"]) == (400, "footer")
    ok = cloud.client.put(
        "/portal/api/calendar/template", json={"header": "H", "footer": "F"}, headers=headers
    )
    assert ok.json()["preview"][0] == "H" and ok.json()["preview"][-1] == "F"
    # The connector reports a meeting and a status; the admin sees both.
    as_connector(cloud, cert)
    details = put(cloud, meeting()).json()["join_details"]
    assert details["template"] == {"header": "H", "footer": "F"}
    cloud.client.put(
        "/api/calendar/users/alice@acme.test/status",
        json={
            "status": "error",
            "reason": "impersonation denied: ErrorImpersonateUserDenied",
            "out_of_office": {"state": "enabled", "active": True, "until": None},
        },
    )
    users = cloud.client.get("/portal/api/calendar/users").json()
    [alice] = users["users"]
    assert (alice["status"], alice["meetings"]) == ("error", 1)
    assert alice["out_of_office"] == {"state": "enabled", "active": True, "until": None}
    listed = cloud.client.get("/portal/api/calendar/users/alice@acme.test/meetings").json()
    [row] = listed["meetings"]
    assert (row["subject"], row["keyword"], row["attendees"]) == ("Review @webex", "@webex", 1)
    assert row["join_url"] == details["join_url"] and row["start"] == "2026-12-01T10:00:00+01:00"
    page = cloud.client.get("/calendar")
    assert "impersonation denied: ErrorImpersonateUserDenied" in page.text
    assert "away now" in page.text
    meetings_page = cloud.client.get("/calendar/users/alice@acme.test/meetings")
    assert details["join_url"] in meetings_page.text and "Europe/Berlin" in meetings_page.text
    rooms = cloud.client.get(
        "/portal/api/calendar/rooms/room1@acme.test/meetings",
        params={"from": "2026-12-01T00:00:00+00:00"},
    )
    assert rooms.json()["meetings"][0]["join_details"] == details
    removed = cloud.client.delete("/portal/api/calendar/users/alice@acme.test", headers=headers)
    assert removed.json() == {"version": 2, "changed": ["alice@acme.test"]}
    again = cloud.client.delete("/portal/api/calendar/users/alice@acme.test", headers=headers)
    assert again.status_code == 404 and again.json()["error"] == "not_found"


def test_admin_sees_only_their_organisation(cloud: Cloud) -> None:
    enable(cloud, "Acme", "alice@acme.test")
    login(cloud.client, "bob@bravo.test")
    assert "alice@acme.test" not in cloud.client.get("/calendar").text
    assert cloud.client.get("/portal/api/calendar/users").json() == {"version": 0, "users": []}
    page = cloud.client.get("/calendar/users/alice@acme.test/meetings")
    assert page.status_code == 404
    api = cloud.client.get("/portal/api/calendar/users/alice@acme.test/meetings")
    assert api.status_code == 404 and api.json()["error"] == "not_found"
    token = csrf_of(cloud.client.get("/calendar").text)
    cloud.client.post(
        "/calendar/users/remove", data={"mailbox": "alice@acme.test", "csrf_token": token}
    )
    login(cloud.client, "alice@acme.test")
    assert 'data-mailbox="alice@acme.test"' in cloud.client.get("/calendar").text


def test_without_login_nothing_is_shown(cloud: Cloud) -> None:
    page = cloud.client.get("/calendar", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fcalendar"
    api = cloud.client.get("/portal/api/calendar/users")
    assert api.status_code == 401 and api.json()["error"] == "login required"


def test_an_account_that_is_no_organisations_admin_is_refused(cloud: Cloud) -> None:
    with cloud.services.database.transaction() as db:
        create_admin(db, "drifter@nowhere.test", PASSWORD, cloud.clock())
    login(cloud.client, "drifter@nowhere.test")
    page = cloud.client.get("/calendar")
    assert page.status_code == 403
    assert "admin &#39;drifter@nowhere.test&#39; belongs to no organisation" in page.text
    api = cloud.client.get("/portal/api/calendar/users")
    assert api.status_code == 403
    assert api.json()["detail"] == "admin 'drifter@nowhere.test' belongs to no organisation"
