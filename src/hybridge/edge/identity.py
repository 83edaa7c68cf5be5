"""Which zone a TLS peer belongs to, and why a refused one was refused, in one line.

Every connection is judged twice, as ``hybridge.tls`` explains: OpenSSL during the
handshake (path to the edge's anchors), then ``core.tlsverify.verify_peer`` through
``hybridge.tls.check_peer`` (second path validation, chain bounds, EKU, the zone's name
rule). A peer refused by OpenSSL never reaches our check; ``hybridge.tls.refusal`` (shared
with the cloud's call-service peer) translates its failure into the same reason codes and
words every refusal — at either stage — as one log line counted under one reason label.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    ChainLimits,
    CnRule,
    PeerRole,
    RefusalReason,
    Refused,
    fingerprint,
)
from hybridge.edge.zones import Zone
from hybridge.tls import check_peer
from hybridge.tls.peer import peer_chain_der
from hybridge.tls.refusal import (
    TOO_MANY_CONNECTIONS,
    Refusal,
    name_mismatch_refusal,
    verdict_refusal,
)
from hybridge.tls.refusal import handshake_refusal as tls_handshake_refusal

#: The edge's own reason label, beside ``hybridge.tls.refusal.REASONS``.
NO_ZONE = "no_zone"

# ``Refusal`` and ``TOO_MANY_CONNECTIONS`` are re-exported: the edge's modules import
# them from here, the one place the edge's refusals are made.
__all__ = [
    "NO_ZONE",
    "TOO_MANY_CONNECTIONS",
    "Admitted",
    "Refusal",
    "VerdictCache",
    "handshake_refusal",
    "judge",
]


@dataclass(frozen=True, slots=True)
class Admitted:
    """A peer accepted for ``zone``, with the verdict that accepted it."""

    zone: Zone
    verdict: Accepted


def handshake_refusal(exc: BaseException) -> Refusal:
    """The refusal for a TLS handshake that failed (OpenSSL's verdict, or the peer's).

    ``hybridge.tls.refusal.handshake_refusal`` worded for the edge; never raises.
    """
    return tls_handshake_refusal(exc, trust_store="the edge's trust store")


_ZoneRule = tuple[str, CnRule, bool]
_Key = tuple[tuple[bytes, ...], PeerRole, ChainLimits]


@dataclass(slots=True)
class _Entry:
    not_before: dt.datetime
    not_after: dt.datetime
    # the zone's name rule -> our verdict under it (accepted, or refused for the name only)
    verdicts: dict[_ZoneRule, Accepted | Refused]


class VerdictCache:
    """Verdicts on identical peer chains, so a peer that reconnects is not validated again.

    An entry is keyed by the exact chain the peer sent (DER, leaf first), the peer's role
    and the chain limits; it holds our verdict under each zone name rule it was judged by,
    and is used only while ``at`` lies inside every validity window of the validated path
    (leaf, intermediates, anchor) and only for the ``AnchorSet`` it was reached under: a
    different set (a trust store change) empties the cache. Only verdicts reached after the
    path validated are kept (accepted, or refused for the name alone): a path refusal is
    never cached, so an expired or untrusted chain is judged afresh every time. The name
    rule is still applied exactly: a verdict is looked up by the zone's (subject name, CN
    rule, wildcards), never reused across rules. Bounded: past ``max_entries`` the oldest
    entry goes.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, not {max_entries!r}")
        self.max_entries = max_entries
        self._entries: dict[_Key, _Entry] = {}
        self._anchors: AnchorSet | None = None
        #: verdicts given from the cache (for tests and the curious)
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every verdict (the trust store or the zones changed)."""
        self._entries.clear()
        self._anchors = None

    def _entry(self, key: _Key, anchors: AnchorSet, at: dt.datetime) -> _Entry | None:
        if anchors is not self._anchors:
            self.clear()
            self._anchors = anchors
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.not_before <= at <= entry.not_after:
            # RFC 5280 §6.1.3 (a)(2): validity is checked at the time of use; outside the
            # path's window the chain is validated afresh (and refused).
            del self._entries[key]
            return None
        return entry

    def get(
        self, key: _Key, rule: _ZoneRule, anchors: AnchorSet, at: dt.datetime
    ) -> Accepted | Refused | None:
        """The cached verdict for chain ``key`` under ``rule`` at ``at``, or None."""
        entry = self._entry(key, anchors, at)
        verdict = None if entry is None else entry.verdicts.get(rule)
        if verdict is not None:
            self.hits += 1
        return verdict

    def put(
        self,
        key: _Key,
        rule: _ZoneRule,
        verdict: Accepted | Refused,
        window: tuple[dt.datetime, dt.datetime],
        anchors: AnchorSet,
    ) -> None:
        """Keep ``verdict`` (reached after the path validated) for chain ``key``."""
        if anchors is not self._anchors:
            self.clear()
            self._anchors = anchors
        entry = self._entries.get(key)
        if entry is None:
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            entry = self._entries[key] = _Entry(window[0], window[1], {})
        entry.verdicts[rule] = verdict


def _window(
    ders: Sequence[bytes], verdict: Accepted | Refused, anchors: AnchorSet
) -> tuple[dt.datetime, dt.datetime] | None:
    """The time window in which every certificate of the validated path is valid.

    The path of an accepted verdict is known by its fingerprints; for a name mismatch it is
    not, so every presented certificate and every anchor bounds the window (narrower, never
    wider). None when a certificate cannot be read (nothing is cached then).
    """
    try:
        presented = [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError:
        return None
    if isinstance(verdict, Accepted):
        on_path = set(verdict.chain_sha256)
        certs = [c for c in (*presented, *anchors.platform) if fingerprint(c) in on_path]
        if len(certs) < len(on_path):
            return None
    else:
        certs = [*presented, *anchors.platform]
    return (
        max(c.not_valid_before_utc for c in certs),
        min(c.not_valid_after_utc for c in certs),
    )


def judge(
    conn: ssl.SSLObject | ssl.SSLSocket,
    zones: Sequence[Zone],
    *,
    anchors: AnchorSet,
    role: PeerRole,
    limits: ChainLimits,
    cache: VerdictCache | None = None,
    at: dt.datetime | None = None,
) -> Admitted | Refusal:
    """The first of ``zones`` whose name rule the peer of ``conn`` passes, or a ``Refusal``.

    A refusal that is not about the name (untrusted, expired, too many intermediates, ...)
    is the same for every zone and is returned as soon as it is seen; a name mismatch lists
    what the certificate presents and every name the zones expect. With a ``cache``, a
    chain judged before under the same anchors, role, limits and zone rule, still inside its
    validity window at ``at`` (default: now), gets the same verdict without validation.
    """
    if not zones:
        return Refusal(NO_ZONE, "no zone is configured for this listener; every peer is refused")
    at = at or dt.datetime.now(dt.UTC)
    key: _Key | None = None
    if cache is not None:
        ders = peer_chain_der(conn)
        key = (tuple(ders), role, limits) if ders else None
    mismatch: Refused | None = None
    for zone in zones:
        rule = (zone.subject_name, zone.cn_rule, zone.wildcards)
        verdict = None
        if cache is not None and key is not None:
            verdict = cache.get(key, rule, anchors, at)
        if verdict is None:
            verdict = check_peer(
                conn, names=zone.policy(), anchors=anchors, role=role, limits=limits, at=at
            )
            if (
                cache is not None
                and key is not None
                and (isinstance(verdict, Accepted) or verdict.reason is RefusalReason.NAME_MISMATCH)
            ):
                window = _window(key[0], verdict, anchors)
                if window is not None:
                    cache.put(key, rule, verdict, window, anchors)
        if isinstance(verdict, Accepted):
            return Admitted(zone, verdict)
        if verdict.reason is not RefusalReason.NAME_MISMATCH:
            return verdict_refusal(verdict)
        mismatch = verdict
    assert mismatch is not None
    expected = " or ".join(
        f"{z.subject_name} (cn={z.cn_rule.value}, wildcards={'on' if z.wildcards else 'off'})"
        for z in zones
    )
    return name_mismatch_refusal(mismatch.presented_names, expected_by="zone", expected=expected)
