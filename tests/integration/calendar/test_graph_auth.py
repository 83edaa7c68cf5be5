"""The Graph backend's access to the tenant, against the Graph emulator over real TLS:
tokens (cache, expiry, refusal), certificate credentials, TLS verification, where secrets
may go, RBAC for Applications scopes and per-mailbox throttling."""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from synckit import DETAILS, START, Clock, drain

from hybridge.calendar.errors import (
    BackendError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    InvalidSyncStateError,
    MailboxThrottledError,
)
from hybridge.calendar.graph import ClientCertificate, GraphBackend, GraphSettings
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import MailboxState, SyncEngine
from hybridge.testing.graph import (
    CALENDARS_READWRITE,
    AppRegistration,
    GraphEmulator,
    GraphTenantConfig,
    Mailbox,
    RoleAssignment,
    ThrottlePolicy,
)
from hybridge.vault.secret import Secret


def token_posts(emulator: GraphEmulator) -> int:
    return sum(1 for m, p in emulator.requests if m == "POST" and p.endswith("/token"))


# -- tokens -----------------------------------------------------------------------------------


def test_token_is_cached_then_refreshed_after_graph_says_expired(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    alice = graph_harness.mailbox("alice")
    graph_harness.add(alice, "A", start=START)
    drain(backend, alice)
    backend.read(alice, graph_harness.add(alice, "B", start=START))
    assert token_posts(emulator) == 1  # msal's cache served the second and third call
    assert emulator.expire_issued_tokens() == 1
    # Graph answers 401 "token is expired": the backend drops msal's token, gets a new one
    # and repeats the request once.
    changes, _, _ = drain(backend, alice)
    assert {c.meeting.subject for c in changes} == {"A", "B"}
    assert token_posts(emulator) == 2
    statuses = [p for m, p in emulator.requests if m == "GET" and "calendarView" in p]
    assert len(statuses) == 3  # first drain, the refused request, its retry


def test_short_lived_tokens_are_fetched_again_before_they_expire(
    graph_harness: Any,
) -> None:
    # msal treats a token with under five minutes left as expired: with a 60 s lifetime
    # every call asks the identity platform again, and every call succeeds.
    emulator, backend = graph_harness.emulator, graph_harness.backend
    emulator.identity.lifetime_seconds = 60
    alice = graph_harness.mailbox("alice")
    mid = graph_harness.add(alice, "A", start=START)
    for _ in range(3):
        assert backend.read(alice, mid).subject == "A"
    assert token_posts(emulator) == 3


def test_wrong_secret_is_rejected_at_the_token_endpoint(graph_harness: Any) -> None:
    backend = graph_harness.new_backend("not-the-secret")
    try:
        with pytest.raises(CredentialsRejectedError, match=r"invalid_client, AADSTS7000215"):
            backend.changes("alice@contoso.test", None, max_changes=10)
    finally:
        backend.close()
    assert not any(p.startswith("/v1.0") for _, p in graph_harness.emulator.requests)


def test_unknown_application_is_rejected(graph_harness: Any) -> None:
    good = graph_harness.backend.settings
    settings = GraphSettings(
        tenant_id=good.tenant_id,
        client_id="00000000-1111-2222-3333-444444444444",
        test_mailbox=good.test_mailbox,
        client_secret=Secret.from_text("x"),
        authority_host=good.authority_host,
        graph_url=good.graph_url,
    )
    backend = GraphBackend.from_settings(settings, graph_harness.context)
    try:
        with pytest.raises(CredentialsRejectedError, match=r"AADSTS700016\): check the client"):
            backend.read("alice@contoso.test", "x")
    finally:
        backend.close()


def test_revoked_token_that_stays_refused_is_credentials_rejected(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    emulator.identity.lifetime_seconds = 3600
    alice = graph_harness.mailbox("alice")
    mid = graph_harness.add(alice, "A", start=START)
    backend.read(alice, mid)
    # Every token, including the one issued for the retry, is refused.
    emulator.identity.refuse_all = True
    with pytest.raises(CredentialsRejectedError, match=r"401 InvalidAuthenticationToken"):
        backend.read(alice, mid)


# -- certificate credentials ------------------------------------------------------------------


def _cert_app(emulator_cert: trustme.LeafCert) -> tuple[AppRegistration, ClientCertificate]:
    pem = emulator_cert.cert_chain_pems[0].bytes()
    app = AppRegistration("3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c", certificates_pem=(pem,))
    credential = ClientCertificate(
        Secret(emulator_cert.private_key_pem.bytes()), certificate_pem=pem
    )
    return app, credential


def _cert_emulator(calendar_pki: tuple[Path, Path, Path], app: AppRegistration) -> GraphEmulator:
    cert, key, _ = calendar_pki
    config = GraphTenantConfig(
        tenant_id="8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        apps=(app,),
        mailboxes=(Mailbox("alice@contoso.test"),),
        assignments=(RoleAssignment(app.client_id, CALENDARS_READWRITE),),
    )
    return GraphEmulator(config, cert_file=cert, key_file=key)


def _cert_backend(emulator: GraphEmulator, credential: ClientCertificate, ctx: Any) -> Any:
    settings = GraphSettings(
        tenant_id=emulator.config.tenant_id,
        client_id=emulator.config.apps[0].client_id,
        test_mailbox="alice@contoso.test",
        certificate=credential,
        authority_host=emulator.base_url,
        graph_url=emulator.graph_url,
    )
    return GraphBackend.from_settings(settings, ctx)


@pytest.fixture(scope="module")
def app_ca() -> trustme.CA:
    # RSA: Entra accepts RSA certificate credentials only (and RSA keys are slow to make).
    return trustme.CA(organization_name="App credential CA", key_type=trustme.KeyType.RSA)


def test_certificate_client_assertion_is_accepted(
    calendar_pki: tuple[Path, Path, Path], client_ssl_context: ssl.SSLContext, app_ca: trustme.CA
) -> None:
    app, credential = _cert_app(
        app_ca.issue_cert("hybridge-connector", key_type=trustme.KeyType.RSA)
    )
    with _cert_emulator(calendar_pki, app) as emulator:
        mid = emulator.add_event(
            "alice@contoso.test", "Cert", start=START, end=START + dt.timedelta(hours=1)
        )
        backend = _cert_backend(emulator, credential, client_ssl_context)
        try:
            assert backend.read("alice@contoso.test", mid).subject == "Cert"
        finally:
            backend.close()


def test_assertion_signed_by_an_unregistered_certificate_is_refused(
    calendar_pki: tuple[Path, Path, Path], client_ssl_context: ssl.SSLContext, app_ca: trustme.CA
) -> None:
    app, _ = _cert_app(app_ca.issue_cert("registered", key_type=trustme.KeyType.RSA))
    _, other = _cert_app(app_ca.issue_cert("someone-else", key_type=trustme.KeyType.RSA))
    with _cert_emulator(calendar_pki, app) as emulator:
        backend = _cert_backend(emulator, other, client_ssl_context)
        try:
            with pytest.raises(CredentialsRejectedError, match=r"AADSTS700027"):
                backend.read("alice@contoso.test", "x")
        finally:
            backend.close()


# -- TLS --------------------------------------------------------------------------------------


def test_emulator_certificate_from_an_untrusted_ca_is_refused(
    tmp_path: Path, client_ssl_context: ssl.SSLContext, calendar_pki: tuple[Path, Path, Path]
) -> None:
    rogue = trustme.CA(organization_name="Rogue CA")
    leaf = rogue.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    app = AppRegistration("3c9e5a7b-1f2d-4e6a-8b0c-9d8e7f6a5b4c", secrets=("s3cret",))
    config = GraphTenantConfig(
        tenant_id="8f6b2c1e-3d4a-4b5c-9e7f-0a1b2c3d4e5f",
        apps=(app,),
        mailboxes=(Mailbox("alice@contoso.test"),),
    )
    with GraphEmulator(
        config, cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem"
    ) as emulator:
        settings = GraphSettings(
            tenant_id=config.tenant_id,
            client_id=app.client_id,
            test_mailbox="alice@contoso.test",
            client_secret=Secret.from_text("s3cret"),
            authority_host=emulator.base_url,
            graph_url=emulator.graph_url,
        )
        backend = GraphBackend.from_settings(settings, client_ssl_context)
        try:
            with pytest.raises(BackendError, match=r"TLS: the certificate of .* is not trusted"):
                backend.changes("alice@contoso.test", None, max_changes=10)
        finally:
            backend.close()
        # msal never got as far as sending a request (the handshake failed first).
        assert emulator.requests == []
        assert emulator.identity.token_requests == 0


def test_trusted_emulator_is_reached_over_verified_tls(graph_harness: Any) -> None:
    # The twin: the same client context trusts the calendar CA, and msal's discovery and
    # token requests, then Graph's, all arrive.
    graph_harness.backend.changes("alice@contoso.test", None, max_changes=10)
    paths = [p for _, p in graph_harness.emulator.requests]
    assert paths[0].endswith("/v2.0/.well-known/openid-configuration")
    assert paths[1].endswith("/oauth2/v2.0/token")
    assert paths[2].endswith("/calendarView/delta")


def test_credential_is_never_sent_to_a_token_endpoint_on_another_host(
    graph_harness: Any,
) -> None:
    emulator = graph_harness.emulator
    emulator.identity.discovery_overrides["token_endpoint"] = (
        f"https://localhost:{emulator.base_url.rsplit(':', 1)[1]}/x/oauth2/v2.0/token"
    )
    with pytest.raises(BackendError, match="refusing to send the application's credential"):
        graph_harness.backend.changes("alice@contoso.test", None, max_changes=10)
    assert [m for m, _ in emulator.requests] == ["GET"]  # the discovery document only
    assert emulator.identity.token_requests == 0


def test_next_link_to_another_host_never_gets_the_token(graph_harness: Any) -> None:
    state = json.dumps(
        {
            "v": 1,
            "link": "https://attacker.example/v1.0/users/a/calendarView/delta?$deltatoken=x",
            "window_end": "2099-01-01",
            "series": [],
        }
    )
    with pytest.raises(InvalidSyncStateError, match="refusing to send the Graph token"):
        graph_harness.backend.changes("alice@contoso.test", state, max_changes=10)
    assert graph_harness.emulator.requests == []  # not even a token was fetched


# -- RBAC for Applications --------------------------------------------------------------------


def test_mailbox_outside_the_rbac_scope_is_denied_with_the_fix(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    client = backend.settings.client_id
    alice, carol = graph_harness.mailbox("alice"), graph_harness.mailbox("carol")
    graph_harness.add(alice, "A", start=START)
    emulator.revoke(client)
    emulator.grant(RoleAssignment(client, CALENDARS_READWRITE, frozenset({alice})))
    assert len(drain(backend, alice)[0]) == 1
    with pytest.raises(ImpersonationDeniedError) as caught:
        backend.changes(carol, None, max_changes=10)
    message = str(caught.value)
    assert "403 ErrorAccessDenied" in message
    assert (
        "New-ManagementRoleAssignment" in message and "Application Calendars.ReadWrite" in message
    )
    assert caught.value.mailbox == carol


def test_rbac_scope_denial_puts_only_that_user_in_error(
    graph_harness: Any, state_store: SyncStateStore, cloud: LocalCalendarService
) -> None:
    emulator = graph_harness.emulator
    client = graph_harness.backend.settings.client_id
    alice, carol = graph_harness.mailbox("alice"), graph_harness.mailbox("carol")
    graph_harness.add(alice, "A", start=START)
    graph_harness.add(carol, "C", start=START)
    emulator.revoke(client)
    emulator.grant(RoleAssignment(client, CALENDARS_READWRITE, frozenset({alice})))
    clock = Clock()
    engine = SyncEngine(graph_harness.backend, state_store, cloud, clock=clock, error_retry=600)
    try:
        engine.set_mailboxes([alice, carol])
        outcomes = {o.mailbox: o for o in engine.run_due()}
        assert outcomes[alice].state is MailboxState.IDLE
        assert outcomes[carol].state is MailboxState.ERROR
        assert "ErrorAccessDenied" in outcomes[carol].reason
        # The Exchange admin widens the management scope; carol recovers at the next retry.
        emulator.grant(RoleAssignment(client, CALENDARS_READWRITE, frozenset({carol})))
        clock.now += 601
        again = {o.mailbox: o for o in engine.run_due()}[carol]
        assert again.state is MailboxState.IDLE
        assert len(cloud.meetings(carol)) == 1
    finally:
        engine.close()


def test_tenant_wide_entra_consent_is_not_needed_and_not_assumed(graph_harness: Any) -> None:
    # No RBAC assignment at all and no Entra consent: every mailbox is denied.
    graph_harness.emulator.revoke(graph_harness.backend.settings.client_id)
    with pytest.raises(ImpersonationDeniedError, match="ErrorAccessDenied"):
        graph_harness.backend.changes("alice@contoso.test", None, max_changes=10)


# -- throttling -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_honoured_for_that_mailbox_only(
    graph_harness: Any,
    state_store: SyncStateStore,
    cloud: LocalCalendarService,
    status: int,
) -> None:
    emulator = graph_harness.emulator
    alice, bob = graph_harness.mailbox("alice"), graph_harness.mailbox("bob")
    graph_harness.add(alice, "A", start=START)
    graph_harness.add(bob, "B", start=START)
    emulator.set_throttle(bob, ThrottlePolicy(retry_after=45, status=status))  # type: ignore[arg-type]
    with pytest.raises(MailboxThrottledError) as caught:
        graph_harness.backend.changes(bob, None, max_changes=10)
    assert caught.value.retry_after_seconds == 45 and caught.value.mailbox == bob
    clock = Clock()
    engine = SyncEngine(graph_harness.backend, state_store, cloud, clock=clock)
    try:
        engine.set_mailboxes([alice, bob])
        outcomes = {o.mailbox: o for o in engine.run_due()}
        assert outcomes[alice].state is MailboxState.IDLE and outcomes[alice].upserts == 1
        assert outcomes[bob].state is MailboxState.BACKOFF
        assert "wait 45 s" in outcomes[bob].reason
        clock.now += 46
        assert engine.due() == [bob]
        emulator.set_throttle(bob, None)
        [again] = engine.run_due()
        assert again.mailbox == bob and again.state is MailboxState.IDLE
        assert len(cloud.meetings(bob)) == 1
    finally:
        engine.close()


def test_secret_and_tokens_never_reach_a_log_line(
    graph_harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = graph_harness.mailbox("alice")
    mid = graph_harness.add(alice, "Logged @webex", start=START)
    backend = graph_harness.new_backend()
    wrong = graph_harness.new_backend("Wr0ng-Secret-Value")
    try:
        drain(backend, alice)
        backend.write_join_details(alice, mid, DETAILS)
        with pytest.raises(CredentialsRejectedError) as caught:
            wrong.read(alice, mid)
        token = backend._client.token()
    finally:
        backend.close()
        wrong.close()
    text = caplog.text + str(caught.value) + repr(backend.settings)
    assert "Imp3rs0n@te-Secret!" not in text and "Wr0ng-Secret-Value" not in text
    assert token not in text and token.split(".")[2] not in text
    assert any("graph" in r.name or "httpx" in r.name for r in caplog.records)


def test_out_of_office_without_the_settings_role_names_that_role(graph_harness: Any) -> None:
    emulator, backend = graph_harness.emulator, graph_harness.backend
    client = backend.settings.client_id
    emulator.revoke(client)
    emulator.grant(RoleAssignment(client, CALENDARS_READWRITE))  # calendars, not settings
    alice = graph_harness.mailbox("alice")
    assert drain(backend, alice)[0] == []
    with pytest.raises(ImpersonationDeniedError, match=r"'Application MailboxSettings\.Read'"):
        backend.out_of_office(alice, START)
