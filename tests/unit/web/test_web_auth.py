"""Login, sessions and CSRF of the shared web layer, through a small real app."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from web_helpers import CSRF, PASSWORD, WebApp, build

from hybridge.web.auth import WebSettings, safe_next
from hybridge.web.schema import web_session
from hybridge.web.throttle import ThrottlePolicy


def test_login_then_private_page(web_app: WebApp) -> None:
    assert web_app.client.get("/private", follow_redirects=False).status_code == 303
    response = web_app.login()
    assert response.status_code == 303 and response.headers["location"] == "/private"
    assert web_app.client.get("/private").json() == {"login": "admin@example.test"}


@pytest.mark.parametrize(
    "target",
    ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)", "evil"],
)
def test_next_never_leaves_the_site(web_app: WebApp, target: str) -> None:
    response = web_app.login(next=target)
    assert response.headers["location"] == "/private"
    assert safe_next(target) == "/"


def test_next_local_path_is_kept(web_app: WebApp) -> None:
    assert web_app.login(next="/private?x=1").headers["location"] == "/private?x=1"


def test_csrf_header_accepted_missing_or_wrong_refused(web_app: WebApp) -> None:
    web_app.login()
    token = CSRF.search(web_app.client.get("/login?next=/x").text)
    # logged in: /login redirects; take the token from a fresh page render instead
    assert token is None
    with web_app.database.transaction() as db:
        stored = db.execute(sa.select(web_session.c.csrf_token)).scalars().all()
    assert len(stored) == 1  # login replaced the anonymous session
    ok = web_app.client.post("/api/change", headers={"X-CSRF-Token": stored[0]})
    assert ok.status_code == 200 and ok.json() == {"changed": True}
    missing = web_app.client.post("/api/change")
    assert missing.status_code == 403
    assert missing.json()["detail"] == "the form's security token is missing or wrong; reload it"
    wrong = web_app.client.post("/api/change", headers={"X-CSRF-Token": stored[0][:-1] + "x"})
    assert wrong.status_code == 403


def test_login_form_itself_needs_csrf(web_app: WebApp) -> None:
    response = web_app.client.post(
        "/login",
        data={"login": "admin@example.test", "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert web_app.client.get("/private", follow_redirects=False).status_code == 303


def test_session_expires_and_logout_kills_the_cookie(web_app: WebApp) -> None:
    web_app.login()
    cookie = web_app.client.cookies.get("__Host-test")
    web_app.clock.advance(hours=8)
    assert web_app.client.get("/private", follow_redirects=False).status_code == 303
    web_app.client.cookies.clear()
    web_app.login()
    token = web_app.client.cookies.get("__Host-test")
    assert token != cookie
    with web_app.database.transaction() as db:
        csrf = db.execute(
            sa.select(web_session.c.csrf_token).where(web_session.c.admin_id.is_not(None))
        ).scalar_one()
    response = web_app.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert (
        "Max-Age=0" in response.headers["set-cookie"]
        or "expires=" in response.headers["set-cookie"].lower()
    )
    web_app.client.cookies.set("__Host-test", token, domain="testserver")
    assert web_app.client.get("/private", follow_redirects=False).status_code == 303


def test_database_holds_only_the_hash_of_the_session_token(web_app: WebApp) -> None:
    web_app.login()
    token = web_app.client.cookies.get("__Host-test")
    with web_app.database.transaction() as db:
        rows = db.execute(sa.select(web_session.c.id_hash)).scalars().all()
    assert token and token not in rows
    import hashlib

    assert hashlib.sha256(token.encode()).hexdigest() in rows


def test_throttling_per_client_address_across_accounts(tmp_path: Path) -> None:
    made = build(
        tmp_path,
        ThrottlePolicy(account_free_failures=10, address_free_failures=2),
        admins=3,
    )
    with made.client:
        assert made.login("admin@example.test", "bad password!!").status_code == 401
        assert made.login("admin1@example.test", "bad password!!").status_code == 401
        assert made.login("admin2@example.test", "bad password!!").status_code == 401
        locked = made.login("admin2@example.test", PASSWORD)
        assert locked.status_code == 429
        # A success elsewhere does not unlock the address: a spray stays throttled.
        made.clock.advance(seconds=1)
        assert made.login("admin2@example.test", PASSWORD).status_code == 303
        made.client.cookies.clear()
        assert made.login("admin1@example.test", "bad password!!").status_code == 401
        assert made.login("admin1@example.test", PASSWORD).status_code == 429
    made.database.dispose()


def test_internal_error_page_hides_the_detail_and_logs_it(web_app: WebApp, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="hybridge.web")
    response = web_app.client.get("/boom")
    assert response.status_code == 500
    assert "internal error; incident" in response.text
    assert "must not reach the browser" not in response.text
    assert "Traceback" not in response.text
    assert "must not reach the browser" in caplog.text  # the server log has it


def test_security_headers_on_pages(web_app: WebApp) -> None:
    response = web_app.client.get("/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    css = web_app.client.get("/static/hybridge.css")
    assert css.status_code == 200 and "cache-control" not in css.headers


def test_cookie_name_must_carry_the_host_prefix() -> None:
    with pytest.raises(ValueError, match="__Host-"):
        WebSettings(cookie_name="session")


def test_no_password_in_logs_or_pages(web_app: WebApp, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    failed = web_app.login(password="wrong but secret-ish")
    assert "wrong but secret-ish" not in failed.text
    ok = web_app.login()
    assert ok.status_code == 303
    assert PASSWORD not in caplog.text and "wrong but secret-ish" not in caplog.text
