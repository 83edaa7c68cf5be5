"""Peer identity: certificate path validation and the zone name rules (pure, no I/O).

Entry point: ``verify_peer(leaf, intermediates, anchors=..., names=..., role=..., at=...)``
returns ``Accepted`` or ``Refused``. See ``verify.py`` for the order of checks, ``path.py``
for what cryptography does and what we change, ``names.py`` for the name rule.
"""

from hybridge.core.tlsverify.anchors import AnchorSet, Use, anchor_set_for
from hybridge.core.tlsverify.errors import (
    ChainParseError,
    InvalidExpectedName,
    InvalidVerifyInput,
    VerificationError,
)
from hybridge.core.tlsverify.names import CnRule, NamePolicy, PresentedIdentities
from hybridge.core.tlsverify.path import ChainLimits, PeerRole
from hybridge.core.tlsverify.result import (
    Accepted,
    IdentitySource,
    RefusalReason,
    Refused,
    Verdict,
    describe_presented_names,
)
from hybridge.core.tlsverify.verify import (
    fingerprint,
    load_chain,
    validate_peer_path,
    verify_peer,
)

__all__ = [
    "Accepted",
    "AnchorSet",
    "ChainLimits",
    "ChainParseError",
    "CnRule",
    "IdentitySource",
    "InvalidExpectedName",
    "InvalidVerifyInput",
    "NamePolicy",
    "PeerRole",
    "PresentedIdentities",
    "RefusalReason",
    "Refused",
    "Use",
    "Verdict",
    "VerificationError",
    "anchor_set_for",
    "describe_presented_names",
    "fingerprint",
    "load_chain",
    "validate_peer_path",
    "verify_peer",
]
