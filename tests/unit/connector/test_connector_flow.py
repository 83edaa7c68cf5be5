"""The registration client's flows, sans-IO: requests out, responses in, no socket.

The responses are built here as the cloud would answer (real certificates and keys); the
flows never see a network, which is the point of their shape (httpx ``_auth.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import certs
from hybridge.connector.errors import BadTokenResponse, CloudUnreachable, TokenRefused
from hybridge.connector.flow import (
    TokenRequest,
    TokenResponse,
    deregister_flow,
    token_flow,
)

REQUEST = TokenRequest(
    cloud_url="https://cloud.test:8443",
    code="the-code",
    redirect_uri="https://connector.test:9443/registration/callback",
    code_verifier="v" * 64,
    csr_pem="-----BEGIN CERTIFICATE REQUEST-----",
)


def _pem_public(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _body(**changes: Any) -> dict[str, Any]:
    ca = certs.build("Flow Connector CA")
    client = certs.build("connector.test", issuer=ca, is_ca=False)
    body = {
        "connector_id": "0b3c9a8e-0000-4000-8000-000000000001",
        "organisation": {"id": "org-1", "name": "Acme"},
        "client_certificate": client.pem.decode(),
        "connector_ca": ca.pem.decode(),
        "list_signing_key": _pem_public(Ed25519PrivateKey.generate()),
        "trust_mode": "manual",
        "ca_manifest": None,
        "cloud_ca_hint": "CN=Root",
        "control_url": "wss://cloud.test:8443/control",
    }
    body.update(changes)
    return body


def _run(flow: Any, response: httpx.Response) -> tuple[httpx.Request, Any]:
    request = next(flow)
    try:
        flow.send(response)
    except StopIteration as stop:
        return request, stop.value
    raise AssertionError("the flow asked for a second request")


def test_token_flow_sends_the_protocol_form_and_parses_the_answer() -> None:
    request, result = _run(token_flow(REQUEST), httpx.Response(200, json=_body()))
    assert request.method == "POST"
    assert str(request.url) == "https://cloud.test:8443/oauth/token"
    form = {k: v[0] for k, v in parse_qs(request.read().decode()).items()}
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://connector.test:9443/registration/callback",
        "client_id": "hybridge-connector",
        "code_verifier": "v" * 64,
        "csr": "-----BEGIN CERTIFICATE REQUEST-----",
    }
    assert isinstance(result, TokenResponse)
    assert result.organisation_name == "Acme" and result.trust_mode == "manual"
    assert "v" * 64 not in repr(REQUEST)  # the verifier never prints


def test_rfc6749_error_becomes_token_refused() -> None:
    answer = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "code expired"}
    )
    with pytest.raises(TokenRefused) as caught:
        _run(token_flow(REQUEST), answer)
    assert str(caught.value) == "the cloud refused the registration: invalid_grant: code expired"


def test_answer_that_is_not_json_is_refused() -> None:
    with pytest.raises(BadTokenResponse, match="with a body that is not JSON"):
        _run(token_flow(REQUEST), httpx.Response(502, text="<html>bad gateway</html>"))


def test_signing_key_that_is_not_ed25519_is_refused() -> None:
    body = _body(list_signing_key=_pem_public(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(BadTokenResponse, match="an Ed25519 public key is required"):
        _run(token_flow(REQUEST), httpx.Response(200, json=body))


def test_auto_mode_without_a_manifest_is_refused() -> None:
    with pytest.raises(BadTokenResponse, match="trust_mode 'auto' but no ca_manifest"):
        _run(token_flow(REQUEST), httpx.Response(200, json=_body(trust_mode="auto")))


def test_missing_member_is_named() -> None:
    body = _body()
    del body["connector_id"]
    with pytest.raises(BadTokenResponse, match="member 'connector_id' is missing"):
        _run(token_flow(REQUEST), httpx.Response(200, json=body))


def test_garbage_client_certificate_is_refused() -> None:
    with pytest.raises(BadTokenResponse, match="client_certificate does not load"):
        _run(token_flow(REQUEST), httpx.Response(200, json=_body(client_certificate="junk")))


def test_deregister_flow_accepts_success_and_gone_but_not_404() -> None:
    request, result = _run(deregister_flow("https://cloud.test", "abc"), httpx.Response(204))
    assert str(request.url) == "https://cloud.test/api/connectors/abc/deregister"
    assert result is None
    assert _run(deregister_flow("https://cloud.test", "abc"), httpx.Response(410))[1] is None
    with pytest.raises(CloudUnreachable, match="HTTP 404"):
        _run(deregister_flow("https://cloud.test", "abc"), httpx.Response(404))
