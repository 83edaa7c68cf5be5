"""Errors of the cloud's call service (its SIP-over-TLS peer and its test calls).

CallServiceError               (CloudError)
 ├── CallServiceSetupError     certificate, key, anchors or port cannot be used
 ├── OrgEdgeError              an organisation's edge setting is invalid, or none exists
 │    └── UnknownOrgEdge       no organisation has that edge (name or address)

A test call that fails (refused TLS, timeout, a non-2xx answer) is not an exception: it is
a ``CallReport`` with ``ok`` false and its reason, and the caller decides.
"""

from __future__ import annotations

from hybridge.cloud.errors import CloudError


class CallServiceError(CloudError):
    """Something the call service refused or could not do."""


class CallServiceSetupError(CallServiceError):
    """The call service cannot start: certificate, key, trust anchors or port unusable."""


class OrgEdgeError(CallServiceError):
    """An organisation's edge setting is invalid (subject name, address)."""


class UnknownOrgEdge(OrgEdgeError):
    """No organisation has the edge asked for; the message says what is configured."""
