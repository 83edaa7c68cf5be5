"""The registration client, sans-IO: generators that yield requests and receive responses.

The shape is httpx's ``_auth.py``: a flow is a generator that yields an ``httpx.Request``,
is sent the ``httpx.Response`` and finally returns its result (``StopIteration.value``).
It never opens a socket; ``run_flow`` drives it over an ``httpx.Client`` whose transport
(and TLS context) the caller chose, so tests swap the network without patching.

- ``token_flow``: RFC 6749 §4.1.3 access token request with the RFC 7636 verifier and the
  CSR (docs/registration.md step 4), returning the parsed ``TokenResponse`` (step 5);
- ``deregister_flow``: step 7, ``POST /api/connectors/{id}/deregister``;
- ``health_flow``: ``GET /healthz``, the cheapest request that proves the TLS channel.

Foreign exceptions are translated here: ``httpx`` transport errors become
``CloudUnreachable`` (certificate problems are diagnosed by ``cloudlink``, which sees the
TLS error), a JSON error body becomes ``TokenRefused``, anything else ``BadTokenResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hybridge.connector.errors import BadTokenResponse, CloudUnreachable, TokenRefused
from hybridge.connector.settings import CLIENT_ID

T = TypeVar("T")
Flow = Generator[httpx.Request, httpx.Response, T]

#: Largest token response read (bytes). The answer holds three PEM objects and a manifest
#: whose own limit is 4 MiB (core.manifest.MAX_PAYLOAD_BYTES); a bigger body is refused.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_TRUST_MODES = ("auto", "manual")


@dataclass(frozen=True)
class TokenRequest:
    """What the connector sends to ``/oauth/token``. The verifier never appears in repr."""

    cloud_url: str
    code: str = field(repr=False)
    redirect_uri: str
    code_verifier: str = field(repr=False)
    csr_pem: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.cloud_url.startswith("https://"):
            raise ValueError(f"cloud URL {self.cloud_url!r} must start with https://")
        if not self.code or not self.code_verifier or not self.csr_pem:
            raise ValueError("a token request needs a code, a verifier and a CSR")


@dataclass(frozen=True)
class TokenResponse:
    """The cloud's answer (docs/registration.md step 5), parsed and type-checked."""

    connector_id: str
    organisation_id: str
    organisation_name: str
    client_certificate_pem: str
    client_certificate: x509.Certificate = field(repr=False, compare=False)
    connector_ca_pem: str
    list_signing_key_pem: str
    list_signing_key: Ed25519PublicKey = field(repr=False, compare=False)
    trust_mode: str
    ca_manifest: str | None
    cloud_ca_hint: str
    control_url: str

    def __post_init__(self) -> None:
        if self.trust_mode not in _TRUST_MODES:
            raise BadTokenResponse(f"trust_mode {self.trust_mode!r}; expected 'auto' or 'manual'")
        if self.trust_mode == "auto" and not self.ca_manifest:
            raise BadTokenResponse("trust_mode 'auto' but no ca_manifest in the response")


def _text(body: dict[str, Any], name: str, *, limit: int = 1_000_000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadTokenResponse(f"token response member {name!r} is missing or not a string")
    return value


def parse_token_response(body: dict[str, Any]) -> TokenResponse:
    """Check and parse a token response body.

    Raises:
        BadTokenResponse: a member is missing, of the wrong type, or does not load.
    """
    organisation = body.get("organisation")
    if not isinstance(organisation, dict):
        raise BadTokenResponse("token response member 'organisation' is missing")
    cert_pem = _text(body, "client_certificate")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadTokenResponse(f"client_certificate does not load: {exc}") from exc
    ca_pem = _text(body, "connector_ca")
    try:
        x509.load_pem_x509_certificate(ca_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadTokenResponse(f"connector_ca does not load: {exc}") from exc
    key_pem = _text(body, "list_signing_key")
    try:
        key = serialization.load_pem_public_key(key_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadTokenResponse(f"list_signing_key does not load: {exc}") from exc
    # docs/registration.md §6: CA lists are signed with Ed25519 (RFC 8037); any other key
    # type would let the cloud, or someone in its place, pick a weaker scheme.
    if not isinstance(key, Ed25519PublicKey):
        raise BadTokenResponse(
            f"list_signing_key is a {type(key).__name__}; an Ed25519 public key is required"
        )
    manifest = body.get("ca_manifest")
    if manifest is not None and not isinstance(manifest, str):
        raise BadTokenResponse("ca_manifest must be a compact JWS string or null")
    return TokenResponse(
        connector_id=_text(body, "connector_id", limit=64),
        organisation_id=_text(organisation, "id", limit=64),
        organisation_name=_text(organisation, "name", limit=200),
        client_certificate_pem=cert_pem,
        client_certificate=cert,
        connector_ca_pem=ca_pem,
        list_signing_key_pem=key_pem,
        list_signing_key=key,
        trust_mode=_text(body, "trust_mode", limit=8),
        ca_manifest=manifest,
        cloud_ca_hint=_text(body, "cloud_ca_hint", limit=1000),
        control_url=_text(body, "control_url", limit=2000),
    )


def _json_body(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise BadTokenResponse(
            f"the cloud answered {len(response.content)} bytes; at most {MAX_RESPONSE_BYTES}"
        )
    try:
        body = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadTokenResponse(
            f"the cloud answered HTTP {response.status_code} with a body that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise BadTokenResponse(f"the cloud answered a JSON {type(body).__name__}, not an object")
    return body


def token_flow(request: TokenRequest) -> Flow[TokenResponse]:
    """Redeem the authorization code (one POST) and return the parsed answer.

    Raises (inside ``run_flow``):
        TokenRefused: the cloud answered an RFC 6749 §5.2 error.
        BadTokenResponse: the answer is not the protocol's.
    """
    response = yield httpx.Request(
        "POST",
        request.cloud_url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": request.code,
            "redirect_uri": request.redirect_uri,
            "client_id": CLIENT_ID,
            "code_verifier": request.code_verifier,
            "csr": request.csr_pem,
        },
        headers={"Accept": "application/json"},
    )
    body = _json_body(response)
    if response.status_code != 200:
        error = body.get("error")
        description = body.get("error_description", "")
        if not isinstance(error, str):
            raise BadTokenResponse(f"the cloud answered HTTP {response.status_code} without error")
        # The description is the cloud's text: shown, never interpreted; bounded.
        raise TokenRefused(error[:64], str(description)[:500])
    return parse_token_response(body)


def deregister_flow(cloud_url: str, connector_id: str) -> Flow[None]:
    """Tell the cloud this connector leaves (mutual TLS is the caller's client's job).

    Raises (inside ``run_flow``):
        CloudUnreachable: the cloud answered anything but 2xx (or 410: already gone).
    """
    response = yield httpx.Request(
        "POST",
        f"{cloud_url}/api/connectors/{connector_id}/deregister",
        headers={"Accept": "application/json"},
    )
    # 410: the cloud already forgot this connector, which is what we wanted. A 404 is not
    # taken as success: it may as well be a cloud without the endpoint.
    if response.status_code == 410 or response.is_success:
        return None
    raise CloudUnreachable(
        f"the cloud refused the deregistration: HTTP {response.status_code} {response.text[:200]!r}"
    )


def health_flow(cloud_url: str) -> Flow[None]:
    """One ``GET /healthz``: succeeds when the channel verifies and the cloud answers 200.

    Raises (inside ``run_flow``):
        CloudUnreachable: any other status.
    """
    response = yield httpx.Request("GET", cloud_url + "/healthz")
    if response.status_code != 200:
        raise CloudUnreachable(f"the cloud answered HTTP {response.status_code} to /healthz")
    return None


def run_flow(flow: Flow[T], client: httpx.Client) -> T:
    """Drive ``flow`` over ``client`` and return its result.

    Raises:
        httpx.TransportError: left to the caller (``cloudlink``), which can tell a
            certificate problem from an unreachable host.
        Whatever the flow raises.
    """
    request = next(flow)
    while True:
        response = client.send(request)
        try:
            response.read()
        finally:
            response.close()
        try:
            request = flow.send(response)
        except StopIteration as stop:
            result: T = stop.value
            return result
