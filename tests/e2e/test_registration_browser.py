"""The whole registration in headless Chromium, both roles as real processes on loopback.

connector login -> registration form -> redirect to the cloud -> portal login -> approval ->
back on the connector -> the trust list shows the cloud's CA. A screenshot of every page is
kept under ``test-artifacts/registration/`` (gitignored).

The browser ignores certificate errors because Chromium reads custom roots only from an NSS
database; what must verify is the connector -> cloud channel, and it does (bootstrap anchors
for the exchange, then the trust store), which the last page proves ("connected").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from browserkit import ARTIFACTS_ROOT, shot, walk_in_browser
from playwright.sync_api import Page

from hybridge.cloud.orgs import create_org_admin
from hybridge.connector.demo_run import RoleProcess, start_cloud, start_connector
from hybridge.demo.pki import DemoPki, init_demo_pki
from hybridge.storage.db import open_database, sqlite_url
from hybridge.web.accounts import create_admin
from hybridge.web.clock import system_clock

pytestmark = pytest.mark.slow  # real role processes on loopback

PASSWORD = "browser test password"
ARTIFACTS = ARTIFACTS_ROOT / "registration"


@dataclass
class Roles:
    pki: DemoPki
    cloud: RoleProcess
    connector: RoleProcess


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    work = tmp_path_factory.mktemp("e2e")
    pki, _ = init_demo_pki(work / "pki")
    (work / "cloud").mkdir()
    cloud_db = open_database(sqlite_url(work / "cloud" / "cloud.db"), "cloud")
    with cloud_db.transaction() as db:
        create_org_admin(db, "Acme", "alice@acme.test", PASSWORD, system_clock())
    cloud_db.dispose()
    (work / "connector").mkdir(mode=0o700)
    node_db = open_database(sqlite_url(work / "connector" / "hybridge.db"), "node")
    with node_db.transaction() as db:
        create_admin(db, "admin", PASSWORD, system_clock())
    node_db.dispose()
    cloud = start_cloud(work, pki)
    try:
        connector = start_connector(work, pki)
    except Exception:
        cloud.stop()
        raise
    yield Roles(pki, cloud, connector)
    connector.stop()
    cloud.stop()


def _shot(page: Page, name: str) -> None:
    shot(page, ARTIFACTS, name)


def test_registration_in_the_browser(roles: Roles) -> None:
    walk_in_browser(lambda page: _walk(page, roles), ARTIFACTS)


def _walk(page: Page, roles: Roles) -> None:
    if True:
        if True:
            page.goto(roles.connector.url + "/registration")
            assert page.url.startswith(roles.connector.url + "/login")
            _shot(page, "01-connector-login")
            page.fill("input[name=login]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(roles.connector.url + "/registration")
            _shot(page, "02-connector-registration-form")

            page.fill("input[name=cloud_url]", roles.cloud.url)
            assert page.is_checked("input[name=manage_ca]")
            page.click('form[action="/registration/start"] button[type=submit]')
            page.wait_for_url(re.compile(re.escape(roles.cloud.url) + r"/login\?next="))
            _shot(page, "03-portal-login")
            page.fill("input[name=login]", "alice@acme.test")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(re.escape(roles.cloud.url) + r"/oauth/authorize\?"))
            approval = page.content()
            assert "connector" in approval.lower() and "localhost" in approval
            shown_fp = page.inner_text("dd.fingerprint").replace(" ", "")
            _shot(page, "04-portal-approval")

            page.click("button[value=approve]")
            page.wait_for_url(
                re.compile(re.escape(roles.connector.url) + r"/registration/callback")
            )
            assert page.inner_text("#registered").startswith("This connector is registered to")
            assert "Acme" in page.inner_text("#registered")
            # The fingerprint the cloud admin approved is the key this connector holds.
            assert page.inner_text("dd.fingerprint").replace(" ", "") == shown_fp
            _shot(page, "05-connector-registered")

            page.click("text=See the trust store")
            page.wait_for_url(roles.connector.url + "/trust")
            rows = page.locator("#anchors tbody tr[data-source=cloud]")
            assert rows.count() == 1
            assert "Hybridge Demo Public Root CA" in rows.first.inner_text()
            assert "valid" in rows.first.inner_text()
            _shot(page, "06-connector-trust-list")

            page.goto(roles.connector.url + "/registration")
            assert "connected" in page.inner_text("#cloud-connection")
            _shot(page, "07-connector-registration-status")
