"""Starting a registration: the redirect, the session binding, and what is refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from connector_app import App

from hybridge.connector.errors import RegistrationError
from hybridge.connector.registration_values import check_cloud_url


def _start(app: App, cloud_url: str, **extra: str) -> tuple[int, str]:
    data = {"cloud_url": cloud_url, "csrf_token": app.csrf("/registration"), **extra}
    response = app.client.post("/registration/start", data=data, follow_redirects=False)
    return response.status_code, response.headers.get("location", response.text)


def test_start_redirects_to_the_cloud_with_pkce_state_and_key_fingerprint(app: App) -> None:
    status, location = _start(app, "https://cloud.test:8443/", manage_ca="yes")
    assert status == 303
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "cloud.test:8443",
        "/oauth/authorize",
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "hybridge-connector"
    assert query["redirect_uri"] == "https://connector.test:9443/registration/callback"
    assert query["code_challenge_method"] == "S256"
    assert query["connector_hostname"] == "connector.test"
    assert query["trust_mode"] == "auto"
    # The verifier stays on the server, in the admin's session: only its S256 goes out.
    web = app.services.auth
    with app.services.database.transaction() as db:
        from hybridge.web.schema import web_session

        rows = db.execute(web_session.select()).all()
    pending = [r.data["registration_pending"] for r in rows if "registration_pending" in r.data]
    assert len(pending) == 1 and web is not None
    assert pending[0]["state"] == query["state"]
    assert create_s256_code_challenge(pending[0]["code_verifier"]) == query["code_challenge"]
    assert pending[0]["code_verifier"] not in location
    assert pending[0]["key_fp"] == query["connector_key_fp"]
    assert app.services.credentials.pending_key() is not None
    # Back on the connector meanwhile, the page shows the fingerprint to compare.
    fp = query["connector_key_fp"]
    grouped = " ".join(fp[i : i + 4] for i in range(0, 64, 4))
    assert grouped in app.client.get("/registration").text


def test_unchecked_box_asks_for_manual_trust(app: App) -> None:
    status, location = _start(app, "https://cloud.test")
    assert status == 303 and "trust_mode=manual" in location


@pytest.mark.parametrize(
    "url",
    ["http://cloud.test", "https://cloud.test/portal", "https://user@cloud.test", "cloud.test",
     "https://cloud.test?x=1", "https://cloud.test:99999"],
)  # fmt: skip
def test_cloud_url_must_be_https_origin(app: App, url: str) -> None:
    with pytest.raises(RegistrationError, match=r"give https://HOST or https://HOST:PORT|bad port"):
        check_cloud_url(url)
    status, body = _start(app, url)
    assert status == 400 and "refused" in body
    assert app.services.credentials.pending_key() is None


def test_callback_without_a_started_registration_is_refused(app: App) -> None:
    response = app.client.get("/registration/callback", params={"code": "c", "state": "s" * 20})
    assert response.status_code == 400
    assert "no registration was started in this browser session" in response.text
    assert app.services.credentials.current() is None


def test_deregister_when_not_registered_is_409(app: App) -> None:
    token = app.client.get("/api/session").json()["csrf_token"]
    response = app.client.post("/api/registration/deregister", headers={"X-CSRF-Token": token})
    assert response.status_code == 409
    assert response.json()["detail"] == "this connector is not registered to a cloud"
