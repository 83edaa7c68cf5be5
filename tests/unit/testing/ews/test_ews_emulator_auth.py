"""NTLM (MS-NLMP) and Basic authentication of the EWS emulator, driven byte by byte."""

from __future__ import annotations

import base64
import hashlib
import struct

import httpx
import pytest
import spnego
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from ews_soap_requests import GET_CALENDAR, SVC_PASSWORD, envelope, response_code
from spnego.channel_bindings import GssChannelBindings

from hybridge.testing.ews import EwsEmulator
from hybridge.testing.ews.ntlm import md4


def test_md4_matches_rfc1320_vectors() -> None:
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4(b"1234567890" * 8).hex() == "e33b4ddc9c38f2199c3e7b164fcc0536"


def _ntlm_flow(
    http: httpx.Client,
    url: str,
    user: str,
    password: str,
    *,
    cbt: GssChannelBindings | None = None,
    tamper: bool = False,
) -> httpx.Response:
    body = envelope(GET_CALENDAR, impersonate="alice@contoso.test")
    first = http.post(url, content=body)
    assert first.status_code == 401
    assert "NTLM" in first.headers.get_list("www-authenticate")
    ctx = spnego.client(user, password, protocol="ntlm", channel_bindings=cbt)
    negotiate = ctx.step()
    assert negotiate is not None
    second = http.post(
        url, content=body, headers={"Authorization": "NTLM " + base64.b64encode(negotiate).decode()}
    )
    assert second.status_code == 401
    challenge = base64.b64decode(second.headers["www-authenticate"].split(" ", 1)[1])
    assert challenge[:8] == b"NTLMSSP\x00" and struct.unpack("<I", challenge[8:12])[0] == 2
    authenticate = ctx.step(challenge)
    assert authenticate is not None
    if tamper:
        # Flip one byte of the workstation name; the MIC covers it.
        authenticate = authenticate[:-1] + bytes([authenticate[-1] ^ 0x01])
    return http.post(
        url,
        content=body,
        headers={"Authorization": "NTLM " + base64.b64encode(authenticate).decode()},
    )


def _cbt_for(emulator: EwsEmulator, pki_cert: bytes) -> GssChannelBindings:
    der = x509.load_pem_x509_certificate(pki_cert).public_bytes(Encoding.DER)
    return GssChannelBindings(
        application_data=b"tls-server-end-point:" + hashlib.sha256(der).digest()
    )


def test_ntlmv2_handshake_authenticates_the_connection(
    emulator: EwsEmulator, http: httpx.Client
) -> None:
    ok = _ntlm_flow(http, emulator.ews_url, "CONTOSO\\svc-hybridge", SVC_PASSWORD)
    assert ok.status_code == 200, ok.text
    assert response_code(ok.content) == "NoError"
    # NTLM authenticates the TCP connection: the next request needs no Authorization.
    again = http.post(
        emulator.ews_url, content=envelope(GET_CALENDAR, impersonate="alice@contoso.test")
    )
    assert again.status_code == 200


def test_ntlm_with_upn_and_channel_binding(emulator: EwsEmulator, http: httpx.Client, pki) -> None:
    cbt = _cbt_for(emulator, pki[1].read_bytes())
    ok = _ntlm_flow(http, emulator.ews_url, "svc@contoso.test", SVC_PASSWORD, cbt=cbt)
    assert ok.status_code == 200


def test_ntlm_wrong_channel_binding_is_refused(emulator: EwsEmulator, http: httpx.Client) -> None:
    # A binding for another certificate: the client authenticated to a man in the middle.
    cbt = GssChannelBindings(application_data=b"tls-server-end-point:" + b"\x00" * 32)
    bad = _ntlm_flow(http, emulator.ews_url, "CONTOSO\\svc-hybridge", SVC_PASSWORD, cbt=cbt)
    assert bad.status_code == 401


def test_ntlm_wrong_password_is_401(emulator: EwsEmulator, http: httpx.Client) -> None:
    bad = _ntlm_flow(http, emulator.ews_url, "CONTOSO\\svc-hybridge", "not-the-password")
    assert bad.status_code == 401
    assert bad.headers.get_list("www-authenticate")[0] == "NTLM"


def test_ntlm_expired_password_is_the_same_401(emulator: EwsEmulator, http: httpx.Client) -> None:
    bad = _ntlm_flow(http, emulator.ews_url, "CONTOSO\\old", "old-pw")
    assert bad.status_code == 401


def test_ntlm_tampered_authenticate_fails_the_mic(
    emulator: EwsEmulator, http: httpx.Client
) -> None:
    bad = _ntlm_flow(http, emulator.ews_url, "CONTOSO\\svc-hybridge", SVC_PASSWORD, tamper=True)
    assert bad.status_code == 401


def test_ntlm_authenticate_without_challenge_is_refused(
    emulator: EwsEmulator, http: httpx.Client
) -> None:
    token = b"NTLMSSP\x00" + struct.pack("<I", 3) + b"\x00" * 80
    r = http.post(
        emulator.ews_url,
        content=envelope(GET_CALENDAR),
        headers={"Authorization": "NTLM " + base64.b64encode(token).decode()},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [
        ("CONTOSO\\svc-hybridge", SVC_PASSWORD, 200),
        ("svc@contoso.test", SVC_PASSWORD, 200),
        ("CONTOSO\\svc-hybridge", "wrong", 401),
        ("OTHERDOM\\svc-hybridge", SVC_PASSWORD, 401),
        ("CONTOSO\\old", "old-pw", 401),  # expired: same 401 as a wrong password
    ],
)
def test_basic_auth(
    emulator: EwsEmulator, http: httpx.Client, user: str, password: str, status: int
) -> None:
    r = http.post(
        emulator.ews_url,
        content=envelope(GET_CALENDAR, impersonate="alice@contoso.test"),
        auth=(user, password),
    )
    assert r.status_code == status
    if status == 401:
        assert 'Basic realm="contoso.test"' in r.headers.get_list("www-authenticate")


def test_ntlm_inside_negotiate_scheme(emulator: EwsEmulator, http: httpx.Client) -> None:
    ctx = spnego.client("CONTOSO\\svc-hybridge", SVC_PASSWORD, protocol="ntlm")
    body = envelope(GET_CALENDAR, impersonate="alice@contoso.test")
    negotiate = ctx.step()
    assert negotiate is not None
    r = http.post(
        emulator.ews_url,
        content=body,
        headers={"Authorization": "Negotiate " + base64.b64encode(negotiate).decode()},
    )
    assert r.status_code == 401
    scheme, token = r.headers["www-authenticate"].split(" ", 1)
    assert scheme == "Negotiate"
    authenticate = ctx.step(base64.b64decode(token))
    assert authenticate is not None
    r = http.post(
        emulator.ews_url,
        content=body,
        headers={"Authorization": "Negotiate " + base64.b64encode(authenticate).decode()},
    )
    assert r.status_code == 200
