"""The premises listener's fields on the traversal page and API (real app, SQLite, CSRF)."""

from __future__ import annotations

from connector_app import App, csrf_of

FORM = {
    "edge": "edge.example.test:7001",
    "edge_name": "edge.example.test",
    "premises": "sip:127.0.0.1:5061;transport=tls",
    "premises_name": "pbx.example.test",
    "keepalive_interval": "20",
}


def test_the_form_saves_a_tls_listener_and_shows_it_again(app: App) -> None:
    page = app.client.get("/traversal")
    assert 'id="listener-state">not listening' in page.text
    fields = {
        **FORM,
        "listen": "127.0.0.1:5071",
        "listen_transport": "tls",
        "listen_allow": "127.0.0.1, 192.0.2.0/28",
        "listen_require_client_cert": "on",
        "csrf_token": csrf_of(page.text),
    }
    saved = app.client.post("/traversal", data=fields)
    assert saved.status_code == 200, saved.text
    assert 'value="127.0.0.1:5071"' in saved.text
    assert 'value="127.0.0.1/32, 192.0.2.0/28"' in saved.text
    assert 'name="listen_require_client_cert" checked' in saved.text
    assert '<option value="tls" selected>' in saved.text
    shown = app.client.get("/api/traversal").json()
    assert shown["config"]["listener"] == {
        "address": "127.0.0.1:5071",
        "transport": "tls",
        "allow": ["127.0.0.1/32", "192.0.2.0/28"],
        "require_client_cert": True,
    }
    assert {"listener", "listener_error", "premises_inbound"} <= set(shown["status"])


def test_client_certificates_over_tcp_are_refused_and_nothing_is_stored(app: App) -> None:
    page = app.client.get("/traversal")
    fields = {
        **FORM,
        "listen": "127.0.0.1:5070",
        "listen_transport": "tcp",
        "listen_require_client_cert": "on",
        "csrf_token": csrf_of(page.text),
    }
    refused = app.client.post("/traversal", data=fields)
    assert refused.status_code == 400
    assert "client certificates can be required only on a TLS listener" in refused.text
    assert 'value="127.0.0.1:5070"' in refused.text  # the form keeps what was typed
    assert app.client.get("/api/traversal").json()["configured"] is False


def test_the_api_refuses_a_listener_host_name(app: App) -> None:
    token = str(app.client.get("/api/session").json()["csrf_token"])
    answer = app.client.put(
        "/api/traversal",
        json={**FORM, "listen": "pbx.example.test:5060"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith(
        "listener address 'pbx.example.test' is not an IP address"
    )
