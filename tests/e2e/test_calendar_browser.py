"""The portal's Calendar page in headless Chromium against a real ``hybridge cloud serve``.

Log in, enable a user, paste two more, remove one, preview and save the join template,
then open a user's meetings list (a meeting stored by the real service code in the cloud's
database). Every form the browser submits carries the session's CSRF token: a form whose
token rendered empty would be refused with 403 and the test would see it. Screenshots go
to ``test-artifacts/calendar/`` (gitignored).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browserkit import ARTIFACTS_ROOT, shot, walk_in_browser
from playwright.sync_api import Page

from hybridge.calendar.model import Attendee, Meeting, zone
from hybridge.cloud import calendar_meetings as meeting_store
from hybridge.cloud.calendar_join import load_join_key
from hybridge.cloud.orgs import create_org_admin, get_or_create_organisation
from hybridge.connector.demo_run import RoleProcess, start_cloud
from hybridge.demo.pki import init_demo_pki
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.web.clock import system_clock

pytestmark = pytest.mark.slow  # a real cloud process and a browser

ADMIN = "alice@acme.test"
PASSWORD = "calendar browser password"
ARTIFACTS = ARTIFACTS_ROOT / "calendar"


@dataclass
class Served:
    work: Path
    cloud: RoleProcess
    db: Database


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("calendar-e2e")
    pki, _ = init_demo_pki(work / "pki")
    (work / "cloud").mkdir()
    db = open_database(sqlite_url(work / "cloud" / "cloud.db"), "cloud")
    with db.transaction() as session:
        create_org_admin(session, "Acme", ADMIN, PASSWORD, system_clock())
    cloud = start_cloud(work, pki)
    try:
        yield Served(work, cloud, db)
    finally:
        cloud.stop()
        db.dispose()


def _shot(page: Page, name: str) -> None:
    shot(page, ARTIFACTS, name)


def test_calendar_page_in_the_browser(served: Served) -> None:
    walk_in_browser(lambda page: _walk(page, served), ARTIFACTS)


def _store_meeting(served: Served) -> str:
    """A keyword meeting of dan@acme.test, stored by the service code; its join URL."""
    berlin = zone("Europe/Berlin")
    meeting = Meeting(
        mailbox="dan@acme.test",
        meeting_id="AAMk-browser",
        version="1",
        uid="browser-uid",
        organizer="dan@acme.test",
        subject="Quarterly review @webex:myroom",
        start=dt.datetime(2026, 12, 4, 9, 30, tzinfo=berlin),
        end=dt.datetime(2026, 12, 4, 10, 30, tzinfo=berlin),
        start_tz="Europe/Berlin",
        end_tz="Europe/Berlin",
        attendees=(Attendee("erin@acme.test"), Attendee("room2@acme.test", "resource")),
    )
    with served.db.transaction() as session:
        org = get_or_create_organisation(session, "Acme", system_clock())
        details = meeting_store.put_meeting(
            session,
            org.id,
            meeting,
            key=load_join_key(served.work / "cloud"),
            base_url=served.cloud.url,
            now=system_clock(),
        )
    assert details is not None
    return details.join_url


def _walk(page: Page, served: Served) -> None:
    url = served.cloud.url
    page.goto(url + "/calendar")
    page.fill("input[name=login]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/calendar")
    # Every form's token is filled in (the macro imported WITH CONTEXT).
    tokens = page.eval_on_selector_all(
        "form input[name=csrf_token]", "inputs => inputs.map(i => i.value)"
    )
    assert tokens and all(tokens), tokens
    assert page.inner_text("#users-version") == "0"
    _shot(page, "01-calendar-empty")

    page.fill("#add-user input[name=mailbox]", "dan@acme.test")
    page.fill("#add-user input[name=display_name]", "Dan")
    page.click("#add-user button[type=submit]")
    page.wait_for_selector("text=Enabled 1 user(s); users list version 1.")
    page.fill("#paste-users textarea[name=users]", "erin@acme.test, Erin\nFrank <frank@acme.test>")
    page.click("#paste-users button[type=submit]")
    page.wait_for_selector("text=Enabled 2 user(s); users list version 2.")
    rows = page.eval_on_selector_all("#calendar-users tbody tr", "rows => rows.length")
    assert rows == 3
    page.click('tr[data-mailbox="frank@acme.test"] button[type=submit]')
    page.wait_for_selector("text=Removed 1 user(s); users list version 3.")
    assert page.query_selector('tr[data-mailbox="frank@acme.test"]') is None
    _shot(page, "02-calendar-users")

    page.fill("#template textarea[name=header]", "Acme video meeting")
    page.fill("#template textarea[name=footer]", "Need help? Call 1234")
    page.click('#template button[value="preview"]')
    page.wait_for_selector("text=Preview only: not saved yet.")
    preview = page.inner_text("#template-preview")
    assert preview.startswith("Acme video meeting\nJoin the meeting: " + url + "/meet/j/")
    assert preview.rstrip().endswith("Need help? Call 1234")
    page.click('#template button[value="save"]')
    page.wait_for_selector("text=Template saved; each meeting gets it on its next update.")
    assert page.input_value("#template textarea[name=header]") == "Acme video meeting"
    _shot(page, "03-calendar-template")

    join_url = _store_meeting(served)
    page.goto(url + "/calendar")
    page.click('tr[data-mailbox="dan@acme.test"] a')
    page.wait_for_url(url + "/calendar/users/dan@acme.test/meetings")
    table = page.inner_text("#meetings")
    assert "Quarterly review @webex:myroom" in table
    assert "2026-12-04 09:30" in table and "Europe/Berlin" in table
    assert "@webex:myroom" in table and join_url in table
    _shot(page, "04-meetings-list")
