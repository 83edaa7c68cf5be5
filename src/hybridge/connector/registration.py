"""Registration to the cloud: start, callback, cloud health, deregistration.

The connector is an OAuth 2.0 public client (RFC 6749 §4.1 + RFC 7636 S256), following
docs/registration.md. ``RegistrationService.start`` makes the key pair, the PKCE verifier
and the ``state`` and returns the authorize URL plus a ``PendingRegistration`` the web layer
keeps in the admin's server-side session. ``complete`` runs the callback checks in an order
where every refusal comes before anything is stored:

1. ``state`` equals the session's (RFC 6749 §10.12: binds the callback to this admin's
   browser session; a forged or replayed callback is refused);
2. the cloud's own error, if it sent one (``access_denied``);
3. the code exchange over TLS verified only by the bootstrap anchors (``cloudlink``);
4. the answer: the certificate is for our key, the organisation is the one required;
5. the CA-list manifest: signature with the list-signing key just learned, EdDSA only,
   audience, sequence (``core.manifest``), then each certificate (``TrustStore``);
6. only then: cloud anchors applied, credential stored (if storing fails, the anchors
   just applied are removed again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization

from hybridge.connector.cloudlink import ClientIdentity, CloudLink
from hybridge.connector.credentials import (
    CredentialStore,
    Registration,
    clear_cloud_anchors,
    key_fingerprint,
    load_key,
    new_key,
)
from hybridge.connector.errors import (
    AlreadyRegistered,
    BadTokenResponse,
    ConnectorError,
    ManifestRefused,
    NotRegistered,
    RegistrationDenied,
    RegistrationError,
    StateMismatch,
    WrongOrganisation,
)
from hybridge.connector.flow import (
    TokenRequest,
    TokenResponse,
    deregister_flow,
    health_flow,
    token_flow,
)
from hybridge.connector.registration_values import (
    TRUST_MODES,
    CloudHealth,
    DeregistrationResult,
    PendingRegistration,
    RegistrationResult,
    check_cloud_url,
    make_csr,
)
from hybridge.connector.settings import CLIENT_ID, REGISTRATION_WINDOW, ConnectorSettings
from hybridge.core.errors import HybridgeError
from hybridge.core.manifest import ManifestError, verify_manifest
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore, TrustStoreError, TrustUse

log = structlog.get_logger(__name__)


class RegistrationService:
    """The connector's side of docs/registration.md."""

    def __init__(
        self,
        settings: ConnectorSettings,
        store: TrustStore,
        database: Database,
        credentials: CredentialStore,
        link: CloudLink,
    ) -> None:
        self.settings = settings
        self.store = store
        self.database = database
        self.credentials = credentials
        self.link = link

    def current(self) -> Registration | None:
        """The stored registration, or ``None``."""
        return self.credentials.current()

    # -- step 1 and 2 -----------------------------------------------------------------

    def start(
        self, cloud_url: str, trust_mode: str, *, actor: str, required_organisation: str = ""
    ) -> tuple[PendingRegistration, str]:
        """Make the key, verifier and state; returns them and the authorize URL.

        Raises:
            AlreadyRegistered: deregister first.
            RegistrationError: bad cloud URL or trust mode.
        """
        if self.current() is not None:
            raise AlreadyRegistered(
                "this connector is already registered; deregister it before registering again"
            )
        url = check_cloud_url(cloud_url)
        if trust_mode not in TRUST_MODES:
            raise RegistrationError(f"trust mode {trust_mode!r}; 'auto' or 'manual'")
        key, secret = new_key()
        self.credentials.put_pending_key(secret, actor=actor)
        # RFC 7636 §4.1: 32 random octets, base64url: 43 characters of entropy-rich verifier;
        # 48 octets here (64 characters), within the 43-128 the RFC allows.
        verifier = secrets.token_urlsafe(48)
        # RFC 6749 §10.12: a non-guessable state bound to the admin's session.
        state = secrets.token_urlsafe(32)
        pending = PendingRegistration(
            state=state,
            code_verifier=verifier,
            cloud_url=url,
            trust_mode=trust_mode,
            key_fp=key_fingerprint(key.public_key()),
            required_organisation=required_organisation.strip()[:200],
            started_at=self.settings.clock().isoformat(),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": self.settings.redirect_uri,
                "state": state,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
                "connector_hostname": self.settings.connector_hostname,
                "connector_key_fp": pending.key_fp,
                "trust_mode": trust_mode,
            }
        )
        log.info("connector.registration_started", cloud=url, trust_mode=trust_mode, actor=actor)
        return pending, f"{url}/oauth/authorize?{query}"

    # -- step 4 to 6 ------------------------------------------------------------------

    def complete(
        self, pending: PendingRegistration | None, params: Mapping[str, str], *, actor: str
    ) -> RegistrationResult:
        """Handle the callback; see the module docstring for the order of checks.

        Raises:
            StateMismatch, RegistrationDenied, TokenRefused, CloudUntrusted,
            CloudNameMismatch, CloudUnreachable, BadTokenResponse, WrongOrganisation,
            ManifestRefused, AlreadyRegistered: nothing was stored.
        """
        state = params.get("state", "")
        if pending is None:
            raise StateMismatch(
                "no registration was started in this browser session; start it again from "
                "the registration page"
            )
        # Constant-time: the state is a bearer value for this session.
        if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise StateMismatch(
                "the callback's state does not match this session's registration; it was not "
                "started here (or was started again since). Nothing was stored"
            )
        # The state matched: this registration attempt is consumed whatever happens next,
        # so a refusal also drops its pending key (nothing of it is left behind).
        try:
            return self._complete(pending, params, actor=actor)
        except Exception:
            self.credentials.drop_pending_key(actor=actor)
            raise

    def _complete(
        self, pending: PendingRegistration, params: Mapping[str, str], *, actor: str
    ) -> RegistrationResult:
        if "error" in params:
            error = params.get("error", "")[:64]
            description = params.get("error_description", "")[:300]
            raise RegistrationDenied(
                f"the cloud did not approve the registration: {error}"
                + (f": {description}" if description else "")
            )
        code = params.get("code", "")
        if not code or len(code) > 512:
            raise RegistrationError("the callback carries no authorization code")
        started = datetime.fromisoformat(pending.started_at)
        if self.settings.clock() - started > REGISTRATION_WINDOW:
            raise RegistrationError(
                f"this registration was started more than {REGISTRATION_WINDOW} ago; start again"
            )
        if self.current() is not None:
            raise AlreadyRegistered("this connector is already registered; deregister it first")
        secret = self.credentials.pending_key()
        if secret is None:
            raise RegistrationError("the key of this registration is gone; start again")
        key = load_key(secret)
        if key_fingerprint(key.public_key()) != pending.key_fp:
            raise RegistrationError(
                "a newer registration was started since this one (its key replaced this one's); "
                "finish that one or start again"
            )
        request = TokenRequest(
            cloud_url=pending.cloud_url,
            code=code,
            redirect_uri=self.settings.redirect_uri,
            code_verifier=pending.code_verifier,
            csr_pem=make_csr(key, self.settings.connector_hostname),
        )
        # DESIGN.md §3 invariant 1: the first contact is verified by the bootstrap set only.
        token = self.link.run(pending.cloud_url, token_flow(request), use=TrustUse.REGISTRATION)
        self._check_token(token, pending, key_fingerprint(key.public_key()))
        registration = Registration(
            connector_id=token.connector_id,
            cloud_url=pending.cloud_url,
            organisation_id=token.organisation_id,
            organisation_name=token.organisation_name,
            hostname=self.settings.connector_hostname,
            key_fp=pending.key_fp,
            key_secret_id="0" * 32,  # replaced by the vault's id in ``save``
            client_certificate_pem=token.client_certificate_pem,
            connector_ca_pem=token.connector_ca_pem,
            list_signing_key_pem=token.list_signing_key_pem,
            trust_mode=token.trust_mode,
            cloud_ca_hint=token.cloud_ca_hint,
            control_url=token.control_url,
            registered_at=self.settings.clock(),
            registered_by=actor,
        )
        certificates: tuple[bytes, ...] = ()
        sequence = 0
        if token.trust_mode == "auto":
            assert token.ca_manifest is not None  # TokenResponse guarantees it
            try:
                manifest = verify_manifest(
                    token.ca_manifest,
                    token.list_signing_key,
                    now=self.settings.clock(),
                    installed_sequence=self.store.installed_cloud_sequence(),
                    audience=token.connector_id,
                )
            except ManifestError as exc:
                raise ManifestRefused(
                    f"the cloud's CA list was refused ({exc.reason}): {exc}; nothing was "
                    "installed or stored"
                ) from exc
            certificates, sequence = manifest.certificates, manifest.sequence
        applied = None
        if certificates:
            try:
                applied = self.store.apply_cloud_set(
                    certificates, actor=f"cloud:{pending.cloud_url}", sequence=sequence
                )
            except TrustStoreError as exc:
                raise ManifestRefused(f"the cloud's CA list was refused: {exc}") from exc
        try:
            stored = self.credentials.save(registration, secret, actor=actor)
        except HybridgeError:
            if applied is not None:
                clear_cloud_anchors(
                    self.store, self.database, actor=actor, now=self.settings.clock()
                )
            raise
        log.info(
            "connector.registered",
            connector_id=stored.connector_id,
            organisation=stored.organisation_name,
            trust_mode=stored.trust_mode,
            anchors_added=len(applied.added) if applied else 0,
        )
        return RegistrationResult(stored, applied)

    def _check_token(self, token: TokenResponse, pending: PendingRegistration, key_fp: str) -> None:
        cert_key = token.client_certificate.public_key()
        spki = cert_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # The credential must be for the key we hold, or it is useless (or someone else's).
        if hashlib.sha256(spki).hexdigest() != key_fp:
            raise BadTokenResponse(
                "the client certificate the cloud issued is not for this connector's key"
            )
        if token.trust_mode != pending.trust_mode:
            log.info(
                "connector.trust_mode_changed_by_cloud_admin",
                asked=pending.trust_mode,
                approved=token.trust_mode,
            )
        wanted = pending.required_organisation
        if wanted and token.organisation_name.casefold() != wanted.casefold():
            raise WrongOrganisation(
                f"the registration was approved in organisation {token.organisation_name!r}, "
                f"but this connector may only join {wanted!r}; nothing was stored. Ask an "
                f"admin of {wanted!r} to approve it (and remove the connector the other "
                "organisation now lists)"
            )

    # -- after registration -----------------------------------------------------------

    def identity(self, registration: Registration) -> ClientIdentity:
        """The client certificate and key for mutual TLS to the cloud."""
        secret = self.credentials.key_for(registration)
        return ClientIdentity(registration.client_certificate_pem.encode(), secret.reveal())

    def cloud_health(self) -> CloudHealth:
        """Whether the cloud verifies with the platform trust store (never bootstrap)."""
        registration = self.current()
        if registration is None:
            return CloudHealth(False, "not registered")
        try:
            self.link.run(
                registration.cloud_url,
                health_flow(registration.cloud_url),
                use=TrustUse.PLATFORM,
                identity=self.identity(registration),
            )
        except (ConnectorError, TrustStoreError) as exc:
            needed = getattr(exc, "needed_ca", None) or registration.cloud_ca_hint
            return CloudHealth(False, str(exc), needed)
        return CloudHealth(
            True, f"connected to {registration.cloud_url}, verified by the trust store"
        )

    def deregister(self, *, actor: str) -> DeregistrationResult:
        """Tell the cloud (mutual TLS, platform anchors), then remove credential and anchors.

        The local removal happens even when the cloud cannot be told: an admin who takes a
        connector out must be able to, and the result says the cloud was not told.

        Raises:
            NotRegistered: there is nothing to deregister.
        """
        registration = self.current()
        if registration is None:
            raise NotRegistered("this connector is not registered to a cloud")
        cloud_error = None
        try:
            self.link.run(
                registration.cloud_url,
                deregister_flow(registration.cloud_url, registration.connector_id),
                use=TrustUse.PLATFORM,
                identity=self.identity(registration),
            )
        except (ConnectorError, TrustStoreError, ValueError) as exc:
            cloud_error = str(exc)
            log.warning("connector.deregister_not_told", error=cloud_error)
        removed = clear_cloud_anchors(
            self.store, self.database, actor=actor, now=self.settings.clock()
        )
        self.credentials.delete(registration, actor=actor)
        log.info(
            "connector.deregistered",
            connector_id=registration.connector_id,
            cloud_told=cloud_error is None,
            anchors_removed=len(removed),
        )
        return DeregistrationResult(
            registration.connector_id, cloud_error is None, cloud_error, removed
        )
