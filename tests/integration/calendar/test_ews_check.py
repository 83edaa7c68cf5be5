"""The Exchange connection test, with exchangelib against the EWS emulator run as a real
process over TLS on 127.0.0.1: the success and each failure it must name."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import urllib3

from hybridge.calendar.ews import EwsSettings, test_connection

PASSWORD = "Imp3rs0n@te-Secret!"
SVC = "CONTOSO\\svc-hybridge"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Contoso Issuing CA")


@pytest.fixture(scope="module")
def server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("ews")
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    users = {
        "netbios_domain": "CONTOSO",
        "dns_domain": "contoso.test",
        "accounts": [
            {
                "smtp": "svc@contoso.test",
                "username": "svc-hybridge",
                "password": PASSWORD,
                "mailbox": False,
            },
            {
                "smtp": "expired@contoso.test",
                "username": "expired",
                "password": PASSWORD,
                "mailbox": False,
                "password_expired": True,
            },
            {"smtp": "room1@contoso.test", "username": "room1", "password": "x"},
            {"smtp": "ceo@contoso.test", "username": "ceo", "password": "x"},
            {"smtp": "busy@contoso.test", "username": "busy", "password": "x"},
            {"smtp": "busy503@contoso.test", "username": "busy503", "password": "x"},
        ],
        "impersonation": [
            {
                "name": "Hybridge",
                "user": "svc-hybridge",
                "scope": ["room1@contoso.test", "busy@contoso.test", "busy503@contoso.test"],
            },
            {"name": "Expired", "user": "expired"},
        ],
        "throttling": {
            "busy@contoso.test": {"after_requests": 0, "back_off_ms": 30000, "busy_responses": 0},
            "busy503@contoso.test": {"after_requests": 0, "busy_responses": 0, "style": "http503"},
        },
    }
    (d / "users.json").write_text(json.dumps(users))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybridge.testing.ews",
            "--port",
            "0",
            "--cert",
            str(d / "cert.pem"),
            "--key",
            str(d / "key.pem"),
            "--config",
            str(d / "users.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket is bound
        assert line.startswith("EWS emulator listening on "), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
        # The emulator's own log must not carry the password either.
        assert PASSWORD not in stderr


@pytest.fixture(scope="module")
def trusted(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=None)
    ctx.load_verify_locations(cadata=ca.cert_pem.bytes().decode())
    return ctx


def _settings(url: str, mailbox: str = "room1@contoso.test", **kw: object) -> EwsSettings:
    return EwsSettings(username=kw.pop("username", SVC), test_mailbox=mailbox, ews_url=url, **kw)  # type: ignore[arg-type]


def _no_secret(result: object) -> None:
    assert PASSWORD not in repr(result)


@pytest.mark.parametrize("auth", ["NTLM", "Basic"])
def test_success(server: str, trusted: ssl.SSLContext, auth: str) -> None:
    result = test_connection(_settings(server, auth=auth), PASSWORD, ssl_context=trusted)
    assert result.code == "ok", result.message
    assert result.server_version == "Microsoft Exchange Server 2016"
    _no_secret(result)


def test_success_with_upn_and_autodiscover(server: str, trusted: ssl.SSLContext) -> None:
    settings = EwsSettings(
        username="svc@contoso.test",
        test_mailbox="room1@contoso.test",
        autodiscover_email="room1@contoso.test",
    )
    base = server.rsplit("/EWS/", 1)[0]
    result = test_connection(
        settings,
        PASSWORD,
        ssl_context=trusted,
        autodiscover_urls=[f"{base}/autodiscover/autodiscover.svc"],
    )
    assert result.code == "ok", result.message
    assert result.ews_url == server


def test_tls_untrusted_names_the_missing_ca(server: str) -> None:
    other = trustme.CA()
    ctx = ssl.create_default_context(cafile=None)
    ctx.load_verify_locations(cadata=other.cert_pem.bytes().decode())
    result = test_connection(_settings(server), PASSWORD, ssl_context=ctx)
    assert result.code == "tls_untrusted"
    assert "Contoso Issuing CA" in result.message
    _no_secret(result)


def test_tls_name_mismatch(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server.replace("127.0.0.1", "localhost")), PASSWORD, ssl_context=trusted
    )
    assert result.code == "tls_name_mismatch"
    assert "127.0.0.1" in result.message and "'localhost'" in result.message


def test_connection_refused(trusted: ssl.SSLContext) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = test_connection(
        _settings(f"https://127.0.0.1:{port}/EWS/Exchange.asmx"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "connection_refused"
    assert str(port) in result.message


def test_dns_failure(trusted: ssl.SSLContext) -> None:
    # RFC 6761 §6.4: .invalid never resolves.
    result = test_connection(
        _settings("https://exchange.example.invalid/EWS/Exchange.asmx"),
        PASSWORD,
        ssl_context=trusted,
    )
    assert result.code == "dns"


@pytest.mark.parametrize("auth", ["NTLM", "Basic"])
def test_wrong_password_is_unauthorized(server: str, trusted: ssl.SSLContext, auth: str) -> None:
    result = test_connection(_settings(server, auth=auth), "not-" + PASSWORD, ssl_context=trusted)
    assert result.code == "unauthorized"
    assert "expired" in result.message
    assert ("not-" + PASSWORD) not in repr(result)


def test_expired_password_is_unauthorized(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server, username="CONTOSO\\expired"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "unauthorized"


def test_impersonation_denied_shows_the_powershell(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server, mailbox="ceo@contoso.test"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "impersonation_denied"
    assert "ErrorImpersonateUserDenied" in result.message
    assert (
        'New-ManagementRoleAssignment -Name "Hybridge impersonation" '
        '-Role ApplicationImpersonation -User "svc-hybridge"'
    ) in result.fix
    assert "ceo@contoso.test" in result.fix
    _no_secret(result)


def test_mailbox_not_found(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server, mailbox="nobody@contoso.test"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "mailbox_not_found"
    assert "nobody@contoso.test" in result.message


def test_server_busy(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server, mailbox="busy@contoso.test"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "server_busy"
    assert result.retry_after_seconds == 30.0


def test_ca_bundle_environment_does_not_widen_trust(
    server: str, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests honours REQUESTS_CA_BUNDLE; our adapter must not let urllib3 load it into the
    # platform-trust-store context.
    bundle = tmp_path / "bundle.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    ctx = ssl.create_default_context(cafile=None)
    ctx.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    result = test_connection(_settings(server), PASSWORD, ssl_context=ctx)
    assert result.code == "tls_untrusted"


def test_http_503_is_server_busy(server: str, trusted: ssl.SSLContext) -> None:
    result = test_connection(
        _settings(server, mailbox="busy503@contoso.test"), PASSWORD, ssl_context=trusted
    )
    assert result.code == "server_busy"


def test_password_never_reaches_a_log_line(
    server: str, trusted: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # exchangelib dumps request headers at DEBUG
    for auth in ("NTLM", "Basic"):
        for password in (PASSWORD, "not-" + PASSWORD):
            test_connection(_settings(server, auth=auth), password, ssl_context=trusted)
    text = caplog.text
    assert "Request headers" in text  # the dumps were there, and were masked
    forms = [PASSWORD, f"{SVC}:{PASSWORD}", f"{SVC}:not-{PASSWORD}"]
    for form in list(forms):
        forms.append(base64.b64encode(form.encode()).decode())
        forms.append(base64.b64encode(form.encode("utf-16-le")).decode())
    for form in forms:
        assert form not in text


def test_verification_off_is_the_contexts_decision(server: str) -> None:
    # The admin turned TLS verification off (after confirming): the context says CERT_NONE,
    # and the test honours it rather than silently verifying against some other store.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        result = test_connection(_settings(server), PASSWORD, ssl_context=ctx)
    assert result.code == "ok", result.message
