"""Errors of the connector's traversal client (the connector end of the edge's traversal zone).

    ConnectorError                      (hybridge.connector.errors)
     └── TraversalError                 anything the traversal client refused or could not do
          ├── TraversalConfigInvalid    a setting is malformed (edge address, name, URI, key)
          ├── TraversalNotConfigured    an action needs a configuration that does not exist
          ├── TraversalIdentityMissing  no certificate to present (no dedicated one, no
          │                             registration)
          ├── EdgeUnreachable           no TCP/TLS connection to the edge (or the premises
          │                             server), or it went away
          ├── EdgeRefused               the edge's (or the premises server's) certificate
                                        failed our check (untrusted issuer, wrong name, ...)
          ├── MessageTimedOut           a peer left a message incomplete past the header
          │                             timeout (slow or stalled sender)
          └── ListenerUnavailable       the premises listener cannot be started (bind, TLS)

Each class carries ``reason``, the stable code used in log lines and metric labels.

Messages quote the offending input and say what would be accepted; none holds a key.
"""

from __future__ import annotations

from hybridge.connector.errors import ConnectorError


class TraversalError(ConnectorError):
    """The traversal client refused something or could not do it."""

    reason = "protocol_error"


class TraversalConfigInvalid(TraversalError):
    """A traversal setting is malformed; nothing was stored."""

    reason = "invalid_config"


class TraversalNotConfigured(TraversalError):
    """No traversal configuration is stored."""

    exit_code = 1


class TraversalIdentityMissing(TraversalError):
    """Neither a dedicated traversal certificate nor a registration certificate exists."""

    reason = "no_identity"


class EdgeUnreachable(TraversalError):
    """The edge (or the premises server) could not be reached, or the connection was lost."""

    reason = "unreachable"


class EdgeRefused(TraversalError):
    """The edge's (or the premises server's) certificate was refused by our check (path or
    name); no SIP was sent."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class MessageTimedOut(TraversalError):
    """A peer began a SIP message and did not finish it within the header timeout."""

    reason = "header_timeout"


class ListenerUnavailable(TraversalError):
    """The premises-side listener could not be started (address in use, no identity, ...)."""

    reason = "listener_unavailable"
