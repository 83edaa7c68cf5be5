"""Errors of the cloud role.

CloudError                (HybridgeError)
 ├── OrganisationError    unknown or duplicate organisation, admin outside any org
 ├── NotOperator          a change only a cloud operator may make
 ├── CaListError          a CA-list upload or retirement refused (not a CA, duplicate...)
 ├── CloudKeyError        the connector CA or list-signing key cannot be loaded
 └── OAuthError           an RFC 6749 error: ``error`` code + ``description``
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class CloudError(HybridgeError):
    """Something the cloud refused."""


class OrganisationError(CloudError):
    """Unknown or duplicate organisation, or an admin who belongs to none."""


class NotOperator(CloudError):
    """Only a cloud operator may change what every organisation receives."""


class CaListError(CloudError):
    """A CA-list change was refused."""


class CloudKeyError(CloudError):
    """The connector CA, the list-signing key or the server certificate cannot be loaded."""


class OAuthError(CloudError):
    """An OAuth 2.0 error (RFC 6749 §4.1.2.1 and §5.2): a code and a description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
