"""The Microsoft identity platform's app-only side: discovery and the client-credentials grant.

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` — the OpenID Connect discovery
  document msal reads to find the token endpoint (instance discovery is off: msal is given
  ``instance_discovery=False``, so it never asks login.microsoftonline.com about our host).
- ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials`` and
  ``scope=https://graph.microsoft.com/.default``, the client authenticated by
  ``client_secret`` or by a ``client_assertion`` (RFC 7523 JWT signed with a registered
  certificate's key; ``x5t#S256``/PS256 or legacy ``x5t``/RS256 header).

Errors use the platform's JSON (``error``, ``error_description`` starting with the
``AADSTSnnnn`` code, ``error_codes``) and status codes: 400 for a bad request or unknown
app, 401 ``invalid_client`` for a wrong secret or assertion.

Access tokens are RS256 JWTs signed by a key the emulator generates; Graph requests are
checked against it (signature, audience, tenant, expiry, and the emulator's "expired"
list that lets tests end every token issued so far).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from hybridge.testing.graph.config import AppRegistration, GraphTenantConfig

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# RFC 7523 §3: the assertion's lifetime is bounded; Entra refuses ones valid for > 10 min.
_MAX_ASSERTION_SECONDS = 600


@dataclass(frozen=True)
class TokenError:
    """An identity-platform error response."""

    status: int
    error: str
    code: int
    description: str

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description}",
            "error_codes": [self.code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


@dataclass(frozen=True)
class TokenFailure:
    """Why Graph refused a bearer token (401 ``InvalidAuthenticationToken``)."""

    message: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    # One token-signing key per process: generating RSA keys is the slow part of starting
    # an emulator, and tokens of one emulator never reach another (different tenant URLs
    # and ports, and each emulator checks only the tokens it issued).
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityPlatform:
    """Issues and checks app-only access tokens for one tenant."""

    def __init__(self, config: GraphTenantConfig, base_url: str) -> None:
        self.config = config
        self.base_url = base_url
        self._key = _signing_key()
        self._kid = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._issued: set[str] = set()
        self._expired: set[str] = set()
        self._seen_assertions: set[str] = set()
        self.token_requests = 0
        self.lifetime_seconds = config.token_lifetime_seconds
        #: Keys replaced in the discovery document (tests of a client's checks on it).
        self.discovery_overrides: dict[str, Any] = {}
        #: Graph refuses every token, even fresh ones (the app's service principal was
        #: removed from Exchange Online while Entra still issues tokens).
        self.refuse_all = False

    @property
    def tenant(self) -> str:
        return self.config.tenant_id

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant}/oauth2/v2.0/token"

    def openid_configuration(self) -> dict[str, Any]:
        """The discovery document of ``/{tenant}/v2.0``."""
        issuer = f"{self.base_url}/{self.tenant}/v2.0"
        oauth = f"{self.base_url}/{self.tenant}/oauth2/v2.0"
        return {
            "token_endpoint": self.token_endpoint,
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.base_url}/{self.tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{oauth}/authorize",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "end_session_endpoint": f"{oauth}/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        } | self.discovery_overrides

    # -- the token endpoint ---------------------------------------------------------------

    def _app(self, client_id: str) -> AppRegistration | None:
        return next((a for a in self.config.apps if a.client_id == client_id), None)

    def grant(self, form: dict[str, str]) -> dict[str, Any] | TokenError:
        """Answer a token request (form fields); a token response or a TokenError."""
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type {form.get('grant_type')!r}.",
            )
        client_id = form.get("client_id", "")
        app = self._app(client_id)
        if app is None:
            return TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant}'.",
            )
        if form.get("scope") != GRAPH_SCOPE:
            return TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')!r} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed.",
            )
        failure = self._authenticate(app, form)
        if failure is not None:
            return failure
        return self._issue(app)

    def _authenticate(self, app: AppRegistration, form: dict[str, str]) -> TokenError | None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None:
            # Constant-time comparison: a client secret is a password.
            if any(hmac.compare_digest(secret.encode(), s.encode()) for s in app.secrets):
                return None
            return TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{app.client_id}'.",
            )
        if assertion is not None and form.get("client_assertion_type") == _ASSERTION_TYPE:
            return self._check_assertion(app, assertion)
        return TokenError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )

    def _check_assertion(self, app: AppRegistration, assertion: str) -> TokenError | None:
        def refused(code: int, why: str) -> TokenError:
            return TokenError(401, "invalid_client", code, why)

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return refused(50027, "Invalid JWT token. The token is malformed.")
        certificate = None
        # RFC 7515 §4.1.7-8: base64url thumbprints (msal keeps the "=" padding; compare
        # without it).
        x5t256 = str(header.get("x5t#S256") or "").rstrip("=")
        x5t = str(header.get("x5t") or "").rstrip("=")
        for pem in app.certificates_pem:
            cert = x509.load_pem_x509_certificate(pem)
            if x5t256 == _b64url(cert.fingerprint(hashes.SHA256())) or (
                x5t == _b64url(cert.fingerprint(hashes.SHA1()))  # noqa: S303
            ):
                certificate = cert
        if certificate is None:
            return refused(
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                f"registered on application '{app.client_id}'.",
            )
        try:
            # RFC 7523 §3: iss = sub = client id, aud = the token endpoint, exp required.
            claims = jwt.decode(
                assertion,
                key=certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["PS256", "RS256"],
                audience=self.token_endpoint,
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            return refused(700024, "Client assertion is not within its valid time range.")
        except jwt.PyJWTError as exc:
            return refused(700027, f"Client assertion failed signature validation: {exc}.")
        if claims.get("sub") != app.client_id:
            return refused(700021, "Client assertion subject does not match the client id.")
        if int(claims["exp"]) - int(claims.get("nbf", claims.get("iat", time.time()))) > (
            _MAX_ASSERTION_SECONDS
        ):
            return refused(700025, "Client assertion lifetime is too long.")
        with self._lock:
            # RFC 7523 §3 item 7: a jti may be refused when seen before (replay).
            if claims["jti"] in self._seen_assertions:
                return refused(700021, "Client assertion replay: the jti was already used.")
            self._seen_assertions.add(claims["jti"])
        return None

    def _issue(self, app: AppRegistration) -> dict[str, Any]:
        now = int(time.time())
        uti = secrets.token_urlsafe(16)
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{self.tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "appid": app.client_id,
            "idtyp": "app",
            "roles": sorted(r.removeprefix("Application ") for r in app.entra_roles),
            "tid": self.tenant,
            "uti": uti,
            "ver": "1.0",
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})
        with self._lock:
            self._issued.add(uti)
        return {
            "token_type": "Bearer",
            "expires_in": self.lifetime_seconds,
            "ext_expires_in": self.lifetime_seconds,
            "access_token": token,
        }

    # -- Graph's side ---------------------------------------------------------------------

    def expire_issued_tokens(self) -> int:
        """Make every token issued so far expired (as if its lifetime had passed)."""
        with self._lock:
            self._expired |= self._issued
            return len(self._issued)

    def check(self, authorization: str | None) -> dict[str, Any] | TokenFailure:
        """The claims of a valid ``Authorization: Bearer`` token, or why it is refused."""
        if not authorization or not authorization.startswith("Bearer "):
            return TokenFailure("Access token is empty.")
        try:
            claims = jwt.decode(
                authorization[7:],
                key=self._key.public_key(),
                algorithms=["RS256"],
                audience=GRAPH_AUDIENCE,
                options={"require": ["exp", "aud", "tid", "uti"]},
            )
        except jwt.ExpiredSignatureError:
            return TokenFailure("Lifetime validation failed, the token is expired.")
        except jwt.PyJWTError:
            return TokenFailure("Access token validation failure. Invalid audience or signature.")
        if self.refuse_all:
            return TokenFailure("The token is not accepted for this tenant's mailboxes.")
        if claims["tid"] != self.tenant:
            return TokenFailure("Access token validation failure: wrong tenant.")
        with self._lock:
            if claims["uti"] not in self._issued:
                return TokenFailure("Access token validation failure: not issued here.")
            if claims["uti"] in self._expired:
                return TokenFailure("Lifetime validation failed, the token is expired.")
        return claims
