"""The traversal page and API on the real connector app (real SQLite, real vault, CSRF)."""

from __future__ import annotations

from pathlib import Path

from connector_app import App, csrf_of
from cryptography.hazmat.primitives import serialization

import certs

FORM = {
    "edge": "edge.example.test:7001",
    "edge_name": "edge.example.test",
    "premises": "sip:pbx.example.test:5061;transport=tls",
    "keepalive_interval": "20",
}


def _leaf_and_key() -> tuple[str, str]:
    root = certs.build("Traversal View Root")
    key = certs.new_key("ec")
    leaf = certs.build("connector.example.test", issuer=root, is_ca=False, key=key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return leaf.pem.decode(), key_pem


def _token(app: App) -> str:
    return str(app.client.get("/api/session").json()["csrf_token"])


def test_page_shows_not_configured_then_saves_the_form(app: App) -> None:
    page = app.client.get("/traversal")
    assert page.status_code == 200
    assert "not configured" in page.text and 'id="redials">0<' in page.text
    saved = app.client.post("/traversal", data={**FORM, "csrf_token": csrf_of(page.text)})
    assert saved.status_code == 200, saved.text
    assert "Saved; the traversal client re-dials the edge." in saved.text
    assert 'value="edge.example.test:7001"' in saved.text
    shown = app.client.get("/api/traversal").json()
    assert shown["configured"] is True
    assert shown["config"]["premises"] == "sip:pbx.example.test:5061;transport=tls"
    assert shown["config"]["keepalive_interval"] == 20.0
    assert shown["config"]["updated_by"] == "web:admin"
    assert set(shown["status"]) >= {"state", "connected_since", "last_ping_rtt", "redials"}


def test_form_without_csrf_token_changes_nothing(app: App) -> None:
    refused = app.client.post("/traversal", data=FORM)
    assert refused.status_code == 403
    assert app.client.get("/api/traversal").json()["configured"] is False


def test_form_with_a_bad_premises_uri_says_why(app: App) -> None:
    page = app.client.get("/traversal")
    bad = {
        **FORM,
        "premises": "sip:pbx.example.test;transport=udp",
        "csrf_token": csrf_of(page.text),
    }
    refused = app.client.post("/traversal", data=bad)
    assert refused.status_code == 400
    assert "only transport=tcp or transport=tls is accepted" in refused.text
    assert app.client.get("/api/traversal").json()["configured"] is False


def test_api_sets_a_dedicated_certificate_and_never_returns_the_key(
    app: App, tmp_path: Path
) -> None:
    leaf, key = _leaf_and_key()
    body = {**FORM, "certificate_pem": leaf, "key_pem": key}
    response = app.client.put("/api/traversal", json=body, headers={"X-CSRF-Token": _token(app)})
    assert response.status_code == 200, response.text
    assert response.json()["config"]["certificate"]["source"] == "dedicated"
    for text in (response.text, app.client.get("/api/traversal").text):
        assert "PRIVATE KEY" not in text
    page = app.client.get("/traversal")
    assert "BEGIN CERTIFICATE" in page.text  # the public certificate is shown for editing
    assert "PRIVATE KEY" not in page.text and "a key is stored" in page.text


def test_api_refuses_a_key_of_another_certificate(app: App) -> None:
    leaf, _ = _leaf_and_key()
    _, other_key = _leaf_and_key()
    body = {**FORM, "certificate_pem": leaf, "key_pem": other_key}
    response = app.client.put("/api/traversal", json=body, headers={"X-CSRF-Token": _token(app)})
    assert response.status_code == 400
    assert "does not belong to the traversal certificate" in response.json()["detail"]
    assert "PRIVATE" not in response.text
    assert app.client.get("/api/traversal").json()["configured"] is False


def test_api_put_without_csrf_header_is_refused(app: App) -> None:
    response = app.client.put("/api/traversal", json=FORM)
    assert response.status_code == 403
    assert app.client.get("/api/traversal").json()["configured"] is False


def test_api_missing_fields_and_delete(app: App) -> None:
    headers = {"X-CSRF-Token": _token(app)}
    missing = app.client.put("/api/traversal", json={"edge": "e.example.test"}, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["detail"] == "missing field(s): edge_name, premises"
    assert app.client.put("/api/traversal", json=FORM, headers=headers).status_code == 200
    assert app.client.delete("/api/traversal", headers=headers).json() == {"configured": False}
    again = app.client.delete("/api/traversal", headers=headers)
    assert again.status_code == 404
    assert again.json()["detail"] == "no traversal configuration is stored"


def test_page_needs_a_login(app: App) -> None:
    app.client.cookies.clear()
    response = app.client.get("/traversal", follow_redirects=False)
    assert response.status_code in (303, 307)
    assert app.client.get("/api/traversal").status_code == 401


def test_metrics_expose_the_traversal_gauges(app: App) -> None:
    text = app.client.get("/metrics").text
    for name in (
        "hybridge_connector_traversal_connected",
        "hybridge_connector_traversal_redials_total",
        "hybridge_connector_traversal_messages_relayed_total",
        "hybridge_connector_traversal_ping_rtt_seconds",
    ):
        assert name in text
