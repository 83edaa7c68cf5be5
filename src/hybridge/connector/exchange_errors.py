"""Errors of the connector's Exchange configurations and credential-entry links.

    ConnectorError                      (hybridge.connector.errors)
     └── ExchangeError                  an Exchange configuration action was refused
          ├── ExchangeConfigInvalid     a field is malformed (quoted, with what is accepted)
          ├── ExchangeConfigNotFound    no configuration with that id
          ├── InsecureNotConfirmed      TLS verification turned off without the confirmation
          ├── PasswordNotSet            a test needs the impersonation password, none is stored
          └── CredentialLinkError       a one-time credential-entry link was refused
               ├── LinkNotFound         unknown token (never issued, or revoked by a newer one)
               ├── LinkExpired          older than its 24 hours
               ├── LinkUsed             already used once
               ├── LinkWrongConfiguration  issued for another configuration
               └── LinkCsrfRejected     the form's link-bound token is missing or wrong

No message ever carries a password or a link token: they quote names, ids and dates only.
"""

from __future__ import annotations

from hybridge.connector.errors import ConnectorError


class ExchangeError(ConnectorError):
    """An Exchange configuration action was refused."""


class ExchangeConfigInvalid(ExchangeError):
    """A field of an Exchange configuration is malformed."""


class ExchangeConfigNotFound(ExchangeError):
    """No Exchange configuration has that id."""


class InsecureNotConfirmed(ExchangeError):
    """TLS verification was turned off without the explicit confirmation."""


class PasswordNotSet(ExchangeError):
    """The configuration has no impersonation password yet."""


class CredentialLinkError(ExchangeError):
    """A one-time credential-entry link was refused."""


class LinkNotFound(CredentialLinkError):
    """No open link has that token."""


class LinkExpired(CredentialLinkError):
    """The link is older than its lifetime."""


class LinkUsed(CredentialLinkError):
    """The link was already used (a link works once)."""


class LinkWrongConfiguration(CredentialLinkError):
    """The link was issued for another Exchange configuration."""


class LinkCsrfRejected(CredentialLinkError):
    """The credential form's link-bound CSRF token is missing or wrong."""
