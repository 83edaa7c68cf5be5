"""Errors of the connector role.

    ConnectorError                  (HybridgeError)
     ├── RegistrationError          a registration step refused; nothing was stored
     │    ├── StateMismatch         the callback's ``state`` is not the admin's session's
     │    ├── RegistrationDenied    the cloud admin denied, or the cloud sent an error back
     │    ├── TokenRefused          the cloud's token endpoint answered an RFC 6749 error
     │    ├── CloudUntrusted        the cloud's certificate does not chain to the anchors
     │    ├── CloudNameMismatch     the certificate chains, but names another host
     │    ├── CloudUnreachable      no TCP/TLS connection, timeout, or an unusable answer
     │    ├── BadTokenResponse      the token response breaks the protocol
     │    ├── ManifestRefused       the CA-list manifest fails signature, sequence, audience
     │    ├── WrongOrganisation     approved in another organisation than the one required
     │    └── AlreadyRegistered     deregister first
     └── NotRegistered              an action needs a registration that does not exist

Every message says what was refused and what would be accepted; none carries a secret (no
code, no verifier, no key).
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class ConnectorError(HybridgeError):
    """Something the connector refused."""


class RegistrationError(ConnectorError):
    """A registration step was refused; the connector stored no credential and no anchor."""


class StateMismatch(RegistrationError):
    """The callback's ``state`` does not match the one kept in the admin's session."""


class RegistrationDenied(RegistrationError):
    """The cloud redirected back with an error (``access_denied`` and the like)."""


class TokenRefused(RegistrationError):
    """The token endpoint refused the code (RFC 6749 §5.2 error)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"the cloud refused the registration: {error}: {description}")
        self.error = error
        self.description = description


class CloudUntrusted(RegistrationError):
    """The cloud's certificate does not chain to an anchor allowed for this connection."""

    def __init__(self, message: str, needed_ca: str | None) -> None:
        super().__init__(message)
        self.needed_ca = needed_ca


class CloudNameMismatch(RegistrationError):
    """The cloud's certificate chains to an allowed anchor but names another host."""


class CloudUnreachable(RegistrationError):
    """No connection to the cloud, a timeout, or an answer that is not HTTP."""


class BadTokenResponse(RegistrationError):
    """The token response is missing a field or holds something unusable."""


class ManifestRefused(RegistrationError):
    """The CA-list manifest was refused (signature, algorithm, sequence, audience, content)."""


class WrongOrganisation(RegistrationError):
    """The cloud admin approved in an organisation other than the one this admin required."""


class AlreadyRegistered(RegistrationError):
    """The connector is registered; deregister before registering again."""


class NotRegistered(ConnectorError):
    """The connector is not registered to a cloud."""
