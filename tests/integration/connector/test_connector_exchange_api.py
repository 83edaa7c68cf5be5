"""Exchange configurations through the connector's JSON API and pages, against the EWS
emulator over TLS: a save is tested first, and each failure is named and stores nothing."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from exchange_stack import (
    PASSWORD,
    SVC,
    Ews,
    Exchange,
    config_body,
    ews,
    exchange,
    exchange_app,
    start,
)

__all__ = ["ews", "exchange", "exchange_app"]


def _create(app: Exchange, config: dict[str, object], **extra: object) -> object:
    return app.api("POST", "/api/exchange/configs", {"config": config, **extra})


def _stored(app: Exchange) -> list[dict[str, object]]:
    configs: list[dict[str, object]] = app.api("GET", "/api/exchange/configs").json()["configs"]
    return configs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("auth", ["NTLM", "Basic"])
def test_save_runs_the_test_and_shows_only_when_and_who(
    exchange: Exchange, ews: Ews, auth: str
) -> None:
    response = _create(exchange, config_body(ews.url, auth=auth), password=PASSWORD)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["saved"] and body["test"]["code"] == "ok"
    assert body["config"]["password"]["set"] is True
    assert body["config"]["password"]["set_by"] == "web:admin"
    assert body["config"]["tls"] == {"enabled": True, "verify": True, "trust": "platform"}
    assert PASSWORD not in response.text


FAILURES = [
    # (config overrides, password, code, a phrase of its own message)
    ({}, "wrong-" + PASSWORD, "unauthorized", "or has expired"),
    ({"username": "CONTOSO\\expired"}, PASSWORD, "unauthorized", "HTTP 401"),
    (
        {"test_mailbox": "ceo@contoso.test"},
        PASSWORD,
        "impersonation_denied",
        "ApplicationImpersonation",
    ),
    (
        {"test_mailbox": "nobody@contoso.test"},
        PASSWORD,
        "mailbox_not_found",
        "'nobody@contoso.test'",
    ),
    ({"test_mailbox": "busy@contoso.test"}, PASSWORD, "server_busy", "wait 30 s"),
    ({"ews_url": "NAME"}, PASSWORD, "tls_name_mismatch", "not valid for the name 'localhost'"),
    ({"ews_url": "CLOSED"}, PASSWORD, "connection_refused", "refused the connection"),
    (
        {"ews_url": "https://exchange.example.invalid/EWS/Exchange.asmx"},
        PASSWORD,
        "dns",
        "does not resolve",
    ),
]


@pytest.mark.parametrize(("overrides", "password", "code", "phrase"), FAILURES)
def test_each_failure_is_named_and_nothing_is_saved(
    exchange: Exchange,
    ews: Ews,
    overrides: dict[str, str],
    password: str,
    code: str,
    phrase: str,
) -> None:
    url = overrides.pop("ews_url", ews.url)
    if url == "NAME":
        url = ews.url.replace("127.0.0.1", "localhost")
    elif url == "CLOSED":
        url = f"https://127.0.0.1:{_closed_port()}/EWS/Exchange.asmx"
    response = _create(exchange, config_body(url, **overrides), password=password)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["saved"] is False and body["config"] is None
    assert body["test"]["code"] == code
    assert phrase in body["test"]["message"]
    assert _stored(exchange) == []
    assert exchange.service._vault.list("exchange.impersonation") == ()
    assert password not in response.text


def test_impersonation_denied_carries_the_powershell(exchange: Exchange, ews: Ews) -> None:
    body = _create(
        exchange, config_body(ews.url, test_mailbox="ceo@contoso.test"), password=PASSWORD
    ).json()
    assert "New-ManagementRoleAssignment" in body["test"]["fix"]
    assert '-Role ApplicationImpersonation -User "svc-hybridge"' in body["test"]["fix"]


def test_ews_ca_only_in_the_bootstrap_set_is_untrusted(tmp_path: Path, ews: Ews) -> None:
    # DESIGN.md §3: the bootstrap set verifies registration only; EWS uses the platform set.
    app: Iterator[Exchange] = start(tmp_path, ews, trust_ews_ca=False)
    stack = next(app)
    try:
        body = _create(stack, config_body(ews.url), password=PASSWORD).json()
        assert body["test"]["code"] == "tls_untrusted"
        assert "No CA certificate is installed" in body["test"]["message"]
    finally:
        next(app, None)


def test_tls_untrusted_names_the_missing_ca(exchange: Exchange, ews: Ews) -> None:
    import trustme

    from hybridge.truststore import CertificateSource

    # Replace the platform set's EWS CA by an unrelated one (and put it back afterwards).
    other = trustme.CA()
    store = exchange.services.store
    store.add_manual([CertificateSource("other.pem", other.cert_pem.bytes())], actor="test")
    fp = [r.anchor.fingerprint_sha256 for r in store.list_anchors() if "Contoso" in r.info.subject]
    store.remove_manual(fp, actor="test")
    try:
        body = _create(exchange, config_body(ews.url), password=PASSWORD).json()
    finally:
        store.add_manual([CertificateSource("contoso.pem", ews.ca.cert_pem.bytes())], actor="t")
    assert body["test"]["code"] == "tls_untrusted"
    assert "Contoso Issuing CA" in body["test"]["message"]


def test_save_anyway_keeps_a_failing_configuration(exchange: Exchange, ews: Ews) -> None:
    config = config_body(ews.url, test_mailbox="ceo@contoso.test")
    response = _create(exchange, config, password=PASSWORD, save_anyway=True)
    assert response.status_code == 201
    body = response.json()
    assert body["saved"] and body["saved_despite_failed_test"] is True
    assert body["config"]["last_test"]["code"] == "impersonation_denied"
    with exchange.services.database.transaction() as db:
        detail = db.execute(
            sa.text(
                "SELECT detail FROM audit_log WHERE action = 'exchange.config.create' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).scalar_one()
    assert "test=impersonation_denied saved-anyway" in detail


def test_turning_verification_off_needs_the_confirmation(exchange: Exchange, ews: Ews) -> None:
    config = config_body(ews.url.replace("127.0.0.1", "localhost"), verify_tls=False)
    refused = _create(exchange, config, password=PASSWORD)
    assert refused.status_code == 400
    assert "confirm it explicitly (confirm_insecure)" in refused.json()["detail"]
    assert _stored(exchange) == []
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning: verification is off
        accepted = _create(exchange, config, password=PASSWORD, confirm_insecure=True)
    assert accepted.status_code == 201
    assert accepted.json()["test"]["code"] == "ok"  # no name check either: TLS, unverified
    page = exchange.page("/exchange").text
    assert 'id="tls-off-warning"' in page and "OFF for Contoso" in page
    # The warning stays on every Exchange page while verification is off.
    config_id = accepted.json()["config"]["id"]
    assert 'id="tls-off-warning"' in exchange.page(f"/exchange/{config_id}").text


def test_test_endpoint_uses_the_stored_password(exchange: Exchange, ews: Ews) -> None:
    created = _create(exchange, config_body(ews.url)).json()  # no password: saved, not tested
    assert created["saved"] and created["test"] is None
    config_id = created["config"]["id"]
    no_password = exchange.api("POST", f"/api/exchange/configs/{config_id}/test")
    assert no_password.status_code == 409
    assert "has no impersonation password yet" in no_password.json()["detail"]
    update = {"config": config_body(ews.url), "password": PASSWORD}
    assert exchange.api("PUT", f"/api/exchange/configs/{config_id}", update).status_code == 200
    ok = exchange.api("POST", f"/api/exchange/configs/{config_id}/test")
    assert ok.status_code == 200 and ok.json()["code"] == "ok"
    # A wrong replacement password is refused by its test and the good one is kept.
    wrong = {"config": config_body(ews.url), "password": "wrong-" + PASSWORD}
    refused = exchange.api("PUT", f"/api/exchange/configs/{config_id}", wrong)
    assert refused.status_code == 422 and refused.json()["test"]["code"] == "unauthorized"
    assert exchange.api("POST", f"/api/exchange/configs/{config_id}/test").json()["code"] == "ok"
    assert exchange.api("GET", "/api/exchange/configs/nope").status_code == 404


def test_bad_fields_are_refused_with_the_value(exchange: Exchange, ews: Ews) -> None:
    cases = [
        ({"username": "just-a-name"}, "'just-a-name' must be DOMAIN\\user or user@domain"),
        ({"ews_url": "http://127.0.0.1/EWS/Exchange.asmx"}, "must be an https:// URL"),
        ({"auth": "Kerberos"}, "authentication 'Kerberos' is not accepted"),
        ({"redirect_hosts": ["evil host"]}, "redirect host 'evil host' is not a DNS name"),
        ({"test_mailbox": "room1"}, "test_mailbox 'room1' is not an address"),
    ]
    for overrides, message in cases:
        config = config_body(ews.url)
        config.update(overrides)
        response = _create(exchange, config, password=PASSWORD)
        assert response.status_code == 400, overrides
        assert message in response.json()["detail"], response.json()
    assert _stored(exchange) == []


def test_page_refuses_a_failing_save_until_save_anyway_is_ticked(
    exchange: Exchange, ews: Ews
) -> None:
    form = {
        "display_name": "Contoso page",
        "endpoint": "ews_url",
        "ews_url": ews.url,
        "username": SVC,
        "auth": "NTLM",
        "password": PASSWORD,
        "test_mailbox": "nobody@contoso.test",
        "verify_tls": "on",
    }
    refused = exchange.post("/exchange/new", form, token_from="/exchange/new")
    assert refused.status_code == 422
    assert 'data-code="mailbox_not_found"' in refused.text and 'id="save-anyway"' in refused.text
    assert _stored(exchange) == []
    assert PASSWORD not in refused.text and 'value=""' in refused.text
    saved = exchange.post(
        "/exchange/new", {**form, "save_anyway": "yes"}, token_from="/exchange/new"
    )
    assert saved.status_code == 200 and "Saved despite the failed test" in saved.text
    status = re.search(r'id="password-status">([^<]*)<', saved.text)
    assert status and status.group(1).startswith("set on ") and "by web:admin" in status.group(1)


def test_a_moved_endpoint_never_receives_the_stored_password(exchange: Exchange, ews: Ews) -> None:
    # A connector admin who repoints the configuration at a server of theirs must not get the
    # stored password sent there by "save" or "test".
    created = _create(exchange, config_body(ews.url), password=PASSWORD).json()
    config_id = created["config"]["id"]
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(4)
        trap.settimeout(0.3)
        moved = config_body(f"https://127.0.0.1:{trap.getsockname()[1]}/EWS/Exchange.asmx")
        response = exchange.api("PUT", f"/api/exchange/configs/{config_id}", {"config": moved})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["saved"] and body["test"] is None and body["password_dropped"] is True
        assert body["config"]["password"] == {"set": False}
        test = exchange.api("POST", f"/api/exchange/configs/{config_id}/test")
        assert test.status_code == 409
        with pytest.raises(TimeoutError):
            trap.accept()  # nobody connected: the password went nowhere
    # Same endpoint, other fields: the stored password is kept and used for the test.
    kept = _create(exchange, config_body(ews.url, display_name="Kept"), password=PASSWORD).json()
    renamed = {"config": config_body(ews.url, display_name="Kept 2")}
    again = exchange.api("PUT", f"/api/exchange/configs/{kept['config']['id']}", renamed).json()
    assert again["password_dropped"] is False and again["test"]["code"] == "ok"


def test_autodiscover_by_email_address(exchange: Exchange, ews: Ews) -> None:
    from hybridge.connector.exchange import ExchangeService
    from hybridge.connector.exchange_config import ExchangeConfig
    from hybridge.vault import Secret

    # The emulator stands for https://contoso.test/autodiscover/... (no DNS for it here).
    base = ews.url.rsplit("/EWS/", 1)[0]
    service = ExchangeService(
        exchange.services.database,
        exchange.service._vault,
        exchange.services.store,
        exchange.clock,
        autodiscover_urls=lambda email: [f"{base}/autodiscover/autodiscover.svc"],
    )
    config = ExchangeConfig(
        display_name="Contoso autodiscover",
        username="svc@contoso.test",
        test_mailbox="room1@contoso.test",
        autodiscover_email="room1@contoso.test",
        redirect_hosts=("autodiscover.contoso.test",),
    )
    outcome = service.save(config, actor="test", password=Secret.from_text(PASSWORD))
    assert outcome.saved and outcome.test is not None, outcome
    assert outcome.test.code == "ok" and outcome.test.ews_url == ews.url
    view = outcome.record.public_view() if outcome.record else {}
    assert view["autodiscover_email"] == "room1@contoso.test" and view["ews_url"] is None
    assert view["redirect_hosts"] == ["autodiscover.contoso.test"]
    unknown = dataclasses.replace(
        config, display_name="Nobody", autodiscover_email="x@contoso.test"
    )
    refused = service.save(unknown, actor="test", password=Secret.from_text(PASSWORD))
    assert not refused.saved and refused.test is not None
    assert refused.test.code == "mailbox_not_found", refused.test
