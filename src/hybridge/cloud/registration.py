"""The registration authority: OAuth 2.0 authorization code + PKCE for connectors.

RFC 6749 §4.1 (code grant) with RFC 7636 PKCE, S256 only, as docs/registration.md states.
Authlib supplies the PKCE parts (``create_s256_code_challenge`` and the RFC 7636 syntax
patterns) and the RFC 6749 error vocabulary. Its ``AuthorizationServer`` is not used: it
has no FastAPI/Starlette server integration, and adapting its request/response wrappers
would be more code than the checks it would run; the grant here also needs what no stock
grant has (the approved key fingerprint and trust choice bound to the code, a CSR checked
against them, and revocation on code reuse). The checks are written out below, in the
order RFC 6749 §4.1.3 and RFC 7636 §4.6 give them.

Codes: 256 random bits, stored as SHA-256 only, single use, 10 minutes, bound to the
approving admin's organisation, the admin, client_id, redirect_uri, code_challenge, key_fp,
hostname and trust_mode.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN, CODE_VERIFIER_PATTERN
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from hybridge.cloud import audit, calist
from hybridge.cloud.connector_ca import issue_client_certificate, load_csr
from hybridge.cloud.errors import OAuthError
from hybridge.cloud.keys import CloudKeys
from hybridge.cloud.models import authorization_code, connector, organisation
from hybridge.cloud.orgs import PortalAdmin
from hybridge.cloud.settings import CLIENT_CERT_LIFETIME, CLIENT_ID, CloudSettings
from hybridge.web.clock import aware

CALLBACK_PATH = "/registration/callback"
TRUST_MODES = ("auto", "manual")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_KEY_FP = re.compile(r"^[0-9a-f]{64}$")
_STATE = re.compile(r"^[\x21-\x7e]{8,512}$")


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def group_fingerprint(key_fp: str) -> str:
    """``key_fp`` in groups of four for reading aloud and comparing (``ab12 cd34 ...``)."""
    return " ".join(key_fp[i : i + 4] for i in range(0, len(key_fp), 4))


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request, as shown on the approval page."""

    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    hostname: str
    key_fp: str
    trust_mode: str

    @property
    def redirect_host(self) -> str:
        return urlsplit(self.redirect_uri).netloc


def check_client(params: Mapping[str, str]) -> tuple[str, str]:
    """``client_id`` and ``redirect_uri`` when both are acceptable.

    RFC 6749 §4.1.2.1: with a bad client or redirect URI the server must NOT redirect; the
    caller shows an error page instead.

    Raises:
        OAuthError: invalid_client or invalid_request (not to be sent by redirect).
    """
    client_id = params.get("client_id", "")
    if client_id != CLIENT_ID:
        raise OAuthError("invalid_client", f"client_id {client_id!r}; expected {CLIENT_ID!r}")
    redirect_uri = params.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    # RFC 6749 §3.1.2: absolute, no fragment; §10.5: TLS. The path is fixed by the protocol,
    # so a redirect cannot be pointed at an arbitrary page of the connector's host.
    if (
        len(redirect_uri) > 2000
        or parts.scheme != "https"
        or not parts.hostname
        or parts.fragment
        or parts.query
        or parts.username
        or not parts.path.endswith(CALLBACK_PATH)
    ):
        raise OAuthError(
            "invalid_request",
            f"redirect_uri {redirect_uri[:200]!r} must be https://HOST[:PORT]{CALLBACK_PATH}",
        )
    return client_id, redirect_uri


def parse_authorize(params: Mapping[str, str]) -> AuthorizeRequest:
    """Validate an authorization request (``check_client`` must have passed).

    Raises:
        OAuthError: unsupported_response_type or invalid_request (sent back by redirect).
    """
    client_id, redirect_uri = check_client(params)
    if params.get("response_type") != "code":
        raise OAuthError(
            "unsupported_response_type",
            f"response_type {params.get('response_type')!r}; only 'code' is supported",
        )
    state = params.get("state", "")
    if not _STATE.match(state):
        raise OAuthError("invalid_request", "state must be 8-512 printable ASCII characters")
    # RFC 7636 §4.2: "plain" is allowed by the RFC but not by us; S256 only (OAuth 2.1 §7.5.2).
    if params.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be 'S256'")
    challenge = params.get("code_challenge", "")
    if not CODE_CHALLENGE_PATTERN.match(challenge) or len(challenge) != 43:
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 (43 chars)")
    hostname = params.get("connector_hostname", "").strip().lower().rstrip(".")
    if not _HOSTNAME.match(hostname):
        raise OAuthError(
            "invalid_request",
            f"connector_hostname {params.get('connector_hostname', '')[:100]!r} is not a DNS name",
        )
    key_fp = params.get("connector_key_fp", "").strip().lower()
    if not _KEY_FP.match(key_fp):
        raise OAuthError(
            "invalid_request", "connector_key_fp must be 64 hex digits (SHA-256 of the SPKI)"
        )
    trust_mode = params.get("trust_mode", "auto")
    if trust_mode not in TRUST_MODES:
        raise OAuthError("invalid_request", f"trust_mode {trust_mode!r}; 'auto' or 'manual'")
    return AuthorizeRequest(client_id, redirect_uri, state, challenge, hostname, key_fp, trust_mode)


def create_code(
    session: Session,
    request: AuthorizeRequest,
    admin: PortalAdmin,
    trust_mode: str,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> str:
    """Store a new single-use code for an approved request and return it."""
    if trust_mode not in TRUST_MODES:
        raise OAuthError("invalid_request", f"trust_mode {trust_mode!r}; 'auto' or 'manual'")
    # RFC 6749 §10.10: codes must be unguessable; 256 bits from the OS CSPRNG.
    code = secrets.token_urlsafe(32)
    session.execute(
        sa.insert(authorization_code).values(
            code_hash=_code_hash(code),
            org_id=admin.organisation.id,
            admin_id=admin.admin_id,
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            key_fp=request.key_fp,
            hostname=request.hostname,
            trust_mode=trust_mode,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    audit.record(
        session,
        now,
        admin.login,
        "registration.approved",
        {
            "hostname": request.hostname,
            "key_fp": request.key_fp,
            "trust_mode": trust_mode,
            "redirect_host": request.redirect_host,
        },
        admin.organisation.id,
    )
    return code


def _revoke_reused(session: Session, row: Any, now: dt.datetime) -> None:
    # RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization
    # server MUST deny the request and SHOULD revoke (when possible) all tokens previously
    # issued based on that authorization code."
    if row.connector_id is None:
        return
    session.execute(
        sa.update(connector)
        .where(connector.c.id == row.connector_id)
        .where(connector.c.status == "active")
        .values(status="revoked")
    )
    audit.record(
        session,
        now,
        "system",
        "connector.revoked",
        {"connector_id": row.connector_id, "reason": "authorization code reused"},
        row.org_id,
    )


def exchange(
    session: Session,
    form: Mapping[str, str],
    keys: CloudKeys,
    settings: CloudSettings,
    now: dt.datetime,
) -> dict[str, Any] | OAuthError:
    """Redeem a code for the connector's credential (the token response of the protocol).

    Returns the error instead of raising it, so that the caller commits what the refusal
    changed (the code marked used, a revocation) before answering 400.
    """
    try:
        return _exchange(session, form, keys, settings, now)
    except OAuthError as exc:
        org_id = getattr(exc, "org_id", None)
        # Only a refusal tied to a real code belongs to an organisation's audit log; an
        # unknown code or a malformed request is logged by the caller, not shown to every
        # organisation as a cloud-wide event.
        if org_id is not None:
            audit.record(
                session,
                now,
                "connector",
                "registration.refused",
                {"error": exc.error, "description": exc.description},
                org_id,
            )
        return exc


def _exchange(
    session: Session,
    form: Mapping[str, str],
    keys: CloudKeys,
    settings: CloudSettings,
    now: dt.datetime,
) -> dict[str, Any]:
    if form.get("grant_type") != "authorization_code":
        raise OAuthError(
            "unsupported_grant_type",
            f"grant_type {form.get('grant_type')!r}; only 'authorization_code'",
        )
    if form.get("client_id") != CLIENT_ID:
        raise OAuthError("invalid_client", f"client_id {form.get('client_id')!r} is unknown")
    code = form.get("code", "")
    if not code or len(code) > 200:
        raise OAuthError("invalid_request", "code is missing")
    row = session.execute(
        sa.select(authorization_code).where(authorization_code.c.code_hash == _code_hash(code))
    ).first()
    if row is None:
        raise OAuthError("invalid_grant", "authorization code is unknown")

    def refuse(error: str, description: str) -> OAuthError:
        exc = OAuthError(error, description)
        exc.org_id = row.org_id  # type: ignore[attr-defined]
        return exc

    if row.used_at is not None:
        _revoke_reused(session, row, now)
        raise refuse(
            "invalid_grant",
            "authorization code was already used; the credential it issued is revoked",
        )
    # Single use, enforced by the database: only one redeemer can flip used_at from NULL.
    # Every presentation consumes the code, successful or not (no retries on a stolen code).
    claimed = session.execute(
        sa.update(authorization_code)
        .where(authorization_code.c.code_hash == row.code_hash)
        .where(authorization_code.c.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise refuse("invalid_grant", "authorization code was already used")
    if now >= aware(row.expires_at):
        raise refuse(
            "invalid_grant", f"authorization code expired at {aware(row.expires_at):%H:%M:%S} UTC"
        )
    # RFC 6749 §4.1.3: redirect_uri and client_id must equal those of the authorization.
    if form.get("redirect_uri") != row.redirect_uri:
        raise refuse("invalid_grant", "redirect_uri differs from the one authorized")
    if form.get("client_id") != row.client_id:
        raise refuse("invalid_grant", "client_id differs from the one authorized")
    verifier = form.get("code_verifier", "")
    if not CODE_VERIFIER_PATTERN.match(verifier):
        raise refuse("invalid_request", "code_verifier must be 43-128 unreserved characters")
    # RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == code_challenge; constant time.
    if not hmac.compare_digest(create_s256_code_challenge(verifier), row.code_challenge):
        raise refuse("invalid_grant", "code_verifier does not match the code_challenge")
    try:
        csr = load_csr(form.get("csr", ""), row.key_fp, row.hostname)
    except OAuthError as exc:
        raise refuse(exc.error, exc.description) from exc

    org = session.execute(sa.select(organisation).where(organisation.c.id == row.org_id)).one()
    connector_id = str(uuid.uuid4())
    cert = issue_client_certificate(
        keys, csr, connector_id, row.hostname, org.name, now, CLIENT_CERT_LIFETIME
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    manifest = None
    installed = None
    if row.trust_mode == "auto":
        manifest = calist.manifest_for(session, connector_id, keys, settings.base_url, now)
        version = calist.current_version(session)
        installed = version.sequence if version else None
    session.execute(
        sa.insert(connector).values(
            id=connector_id,
            org_id=row.org_id,
            hostname=row.hostname,
            key_fp=row.key_fp,
            certificate_pem=cert_pem,
            certificate_serial=format(cert.serial_number, "x"),
            trust_mode=row.trust_mode,
            status="active",
            registered_at=now,
            approved_by=row.admin_id,
            installed_sequence=installed,
            last_seen_at=now,
        )
    )
    session.execute(
        sa.update(authorization_code)
        .where(authorization_code.c.code_hash == row.code_hash)
        .values(connector_id=connector_id)
    )
    audit.record(
        session,
        now,
        "connector",
        "connector.registered",
        {
            "connector_id": connector_id,
            "hostname": row.hostname,
            "key_fp": row.key_fp,
            "trust_mode": row.trust_mode,
            "ca_list_sequence": installed,
        },
        row.org_id,
    )
    return {
        "connector_id": connector_id,
        "organisation": {"id": org.id, "name": org.name},
        "client_certificate": cert_pem,
        "connector_ca": keys.connector_ca_pem,
        "list_signing_key": keys.list_signing_public_pem,
        "trust_mode": row.trust_mode,
        "ca_manifest": manifest,
        "cloud_ca_hint": keys.cloud_ca_hint,
        "control_url": settings.control_url,
    }
