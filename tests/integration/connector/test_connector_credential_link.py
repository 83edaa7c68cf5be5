"""The one-time credential-entry link: the Exchange admin enters the password through it,
once, within 24 hours, for one configuration, with a CSRF token bound to the link."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from urllib.parse import urlsplit

import sqlalchemy as sa
from exchange_stack import (
    BASE,
    PASSWORD,
    SVC,
    Ews,
    Exchange,
    config_body,
    ews,
    exchange,
    exchange_app,
)
from fastapi.testclient import TestClient

from hybridge.connector.credential_link import NONCE_COOKIE
from hybridge.vault import Secret

__all__ = ["ews", "exchange", "exchange_app"]


def _config(app: Exchange, ews: Ews, name: str = "Contoso") -> str:
    response = app.api(
        "POST", "/api/exchange/configs", {"config": config_body(ews.url, display_name=name)}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["config"]["id"])


def _link(app: Exchange, config_id: str) -> str:
    response = app.api("POST", f"/api/exchange/configs/{config_id}/links")
    assert response.status_code == 201
    return urlsplit(response.json()["url"]).path


def _browser(app: Exchange) -> TestClient:
    """The Exchange admin's browser: no connector login, its own cookies."""
    return TestClient(app.client.app, base_url=BASE, raise_server_exceptions=False)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert found, "the entry page has no link-bound CSRF token"
    return found.group(1)


def _enter(browser: TestClient, path: str, password: str = PASSWORD, **extra: str) -> object:
    page = browser.get(path)
    assert page.status_code == 200, page.text
    data = {"username": SVC, "password": password, "csrf_token": _csrf(page.text), **extra}
    return browser.post(path, data=data)


def _audit(app: Exchange, action: str) -> list[sa.Row[tuple[str, str]]]:
    with app.services.database.transaction() as db:
        return list(
            db.execute(
                sa.text("SELECT actor, detail FROM audit_log WHERE action = :a ORDER BY id"),
                {"a": action},
            ).all()
        )


def test_exchange_admin_enters_the_password_once(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    path = _link(exchange, config_id)
    browser = _browser(exchange)
    page = browser.get(path)
    # The Exchange admin sees which connector and which configuration the link is for.
    assert "connector.test" in page.text and 'id="config-name">Contoso<' in page.text
    assert "created by <strong>web:admin</strong>" in page.text
    done = _enter(browser, path)
    assert done.status_code == 200, done.text
    assert 'id="stored"' in done.text and 'data-code="ok"' in done.text
    assert PASSWORD not in done.text
    stored = exchange.service._stored_password(config_id)
    assert stored == Secret.from_text(PASSWORD)
    view = exchange.api("GET", f"/api/exchange/configs/{config_id}").json()
    assert view["password"]["set_by"].startswith("exchange-admin:CONTOSO\\svc-hybridge via link")
    # Used once: the link stops working, for reading and for writing.
    again = browser.get(path)
    assert again.status_code == 410 and "already used" in again.text
    replay = browser.post(path, data={"username": SVC, "password": "x", "csrf_token": "0" * 64})
    assert replay.status_code == 410 and "already used" in replay.text
    assert exchange.service._stored_password(config_id) == Secret.from_text(PASSWORD)
    # Audit: who created it, when it was used (from where, as whom), never the password.
    (created,) = _audit(exchange, "exchange.link.create")[-1:]
    assert created.actor == "web:admin" and f"config={config_id}" in created.detail
    (used,) = _audit(exchange, "exchange.link.use")[-1:]
    assert used.actor.startswith("link:") and "from=testclient" in used.detail
    assert "created_by=web:admin" in used.detail


def test_the_token_is_stored_only_as_its_hash(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    token = _link(exchange, config_id).rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 random bytes, base64url: 256 bits (>= 128 required)
    with exchange.services.database.transaction() as db:
        rows = db.execute(sa.text("SELECT * FROM exchange_credential_links")).all()
    text = repr(rows)
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text


def test_link_expires_after_24_hours(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    path = _link(exchange, config_id)
    exchange.clock.advance(dt.timedelta(hours=24))
    response = _browser(exchange).get(path)
    assert response.status_code == 410 and "expired on" in response.text
    assert exchange.service._stored_password(config_id) is None


def test_link_works_just_before_expiry(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    path = _link(exchange, config_id)
    exchange.clock.advance(dt.timedelta(hours=23, minutes=59))
    assert _enter(_browser(exchange), path).status_code == 200


def test_link_expiring_between_page_and_submit_is_refused(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    path = _link(exchange, config_id)
    browser = _browser(exchange)
    token = _csrf(browser.get(path).text)
    exchange.clock.advance(dt.timedelta(hours=25))
    response = browser.post(path, data={"username": SVC, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 410 and "expired on" in response.text
    assert exchange.service._stored_password(config_id) is None


def test_link_is_scoped_to_one_configuration(exchange: Exchange, ews: Ews) -> None:
    first = _config(exchange, ews, "Contoso A")
    second = _config(exchange, ews, "Contoso B")
    path = _link(exchange, first)
    elsewhere = path.replace(first, second)
    browser = _browser(exchange)
    assert browser.get(elsewhere).status_code == 403
    csrf = _csrf(browser.get(path).text)
    response = browser.post(
        elsewhere, data={"username": SVC, "password": PASSWORD, "csrf_token": csrf}
    )
    assert response.status_code == 403 and "another Exchange configuration" in response.text
    assert exchange.service._stored_password(second) is None
    # The refused attempt did not spend the link: it still works for its own configuration.
    assert _enter(browser, path).status_code == 200
    assert exchange.service._stored_password(first) is not None


def test_csrf_token_is_bound_to_the_link_and_the_browser(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    other_id = _config(exchange, ews, "Other")
    path = _link(exchange, config_id)
    other_path = _link(exchange, other_id)
    browser = _browser(exchange)
    good = _csrf(browser.get(path).text)
    other_links_token = _csrf(browser.get(other_path).text)  # same browser nonce, other link
    data = {"username": SVC, "password": PASSWORD}
    missing = browser.post(path, data=data)
    assert missing.status_code == 403 and "missing" in missing.text
    wrong = browser.post(path, data={**data, "csrf_token": other_links_token})
    assert wrong.status_code == 403 and "security token is wrong" in wrong.text
    # A forged cross-site POST: no SameSite cookie comes with it.
    forger = _browser(exchange)
    forged = forger.post(path, data={**data, "csrf_token": good})
    assert forged.status_code == 403 and "missing" in forged.text
    foreign = browser.post(
        path, data={**data, "csrf_token": good}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert "'https://evil.example' refused" in html.unescape(foreign.text)
    assert exchange.service._stored_password(config_id) is None
    # None of the refusals spent the link.
    ok = browser.post(path, data={**data, "csrf_token": good})
    assert ok.status_code == 200
    assert browser.cookies.get(NONCE_COOKIE) is None  # the nonce cookie is cleared after use


def test_a_new_link_revokes_the_open_one(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    old = _link(exchange, config_id)
    new = _link(exchange, config_id)
    browser = _browser(exchange)
    assert browser.get(old).status_code == 404
    assert _enter(browser, new).status_code == 200


def test_unknown_token_and_bad_username(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    path = _link(exchange, config_id)
    browser = _browser(exchange)
    guessed = path.rsplit("/", 1)[0] + "/" + "A" * 43
    assert browser.get(guessed).status_code == 404
    page = browser.get(path)
    bad = browser.post(
        path, data={"username": "no domain", "password": PASSWORD, "csrf_token": _csrf(page.text)}
    )
    assert bad.status_code == 400 and "'no domain' must be DOMAIN\\user" in html.unescape(bad.text)
    assert exchange.service._stored_password(config_id) is None
    assert _enter(browser, path).status_code == 200  # a typo does not spend the link


def test_admin_page_creates_and_shows_the_link_once(exchange: Exchange, ews: Ews) -> None:
    config_id = _config(exchange, ews)
    response = exchange.post(f"/exchange/{config_id}/link", {}, token_from=f"/exchange/{config_id}")
    url = re.search(r'id="link-url">([^<]+)<', response.text)
    assert url and url.group(1).startswith(f"{BASE}/credential-entry/{config_id}/")
    assert url.group(1) not in exchange.page(f"/exchange/{config_id}").text


def test_entry_page_warns_when_verification_is_off(exchange: Exchange, ews: Ews) -> None:
    verified = _config(exchange, ews)
    assert 'id="tls-off-warning"' not in _browser(exchange).get(_link(exchange, verified)).text
    body = {"config": config_body(ews.url, display_name="Off", verify_tls=False)}
    off = exchange.api("POST", "/api/exchange/configs", {**body, "confirm_insecure": True})
    page = _browser(exchange).get(_link(exchange, off.json()["config"]["id"]))
    assert 'id="tls-off-warning"' in page.text and "does not verify" in page.text
