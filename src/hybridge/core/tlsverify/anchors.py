"""Anchor sets: the trusted certificates a connection may chain to, with their scope.

An ``AnchorSet`` holds two groups: *platform* anchors (manual and cloud-pushed, usable by
every connection) and *registration-only* anchors (the bootstrap set shipped with the
connector, DESIGN §3.1: used only to reach the cloud's registration endpoints). The scope
lives on the set, so a chain that reaches only a bootstrap anchor can be refused for any
other use with its own reason (``bootstrap_only``), not a vague ``untrusted_issuer``.

Building a cryptography ``Store`` of 150 anchors costs far more than one verification, so
a set builds its stores once; callers keep one ``AnchorSet`` per trust-store version
(``anchor_set_for`` memoises by content for them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import Store

_SHA256 = hashes.SHA256()


class Use(StrEnum):
    """What the connection being verified is for."""

    #: The connector's first HTTPS connection to the cloud's registration endpoints.
    REGISTRATION = "registration"
    #: Everything else: cloud API after registration, Exchange, the edge's zones.
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True, eq=False)
class AnchorSet:
    """Platform anchors and registration-only (bootstrap) anchors, with prebuilt stores."""

    platform: tuple[x509.Certificate, ...] = ()
    registration_only: tuple[x509.Certificate, ...] = ()
    _platform_store: Store | None = field(init=False, repr=False, default=None)
    _registration_store: Store | None = field(init=False, repr=False, default=None)
    _bootstrap_fingerprints: frozenset[bytes] = field(init=False, repr=False, default=frozenset())

    def __post_init__(self) -> None:
        platform = tuple(self.platform)
        bootstrap = tuple(self.registration_only)
        object.__setattr__(self, "platform", platform)
        object.__setattr__(self, "registration_only", bootstrap)
        # cryptography's Store refuses an empty list; "no anchors" is a refusal, not a crash.
        object.__setattr__(self, "_platform_store", Store(list(platform)) if platform else None)
        everything = platform + bootstrap
        object.__setattr__(
            self, "_registration_store", Store(list(everything)) if everything else None
        )
        object.__setattr__(
            self,
            "_bootstrap_fingerprints",
            frozenset(c.fingerprint(_SHA256) for c in bootstrap),
        )

    def store_for(self, use: Use) -> Store | None:
        """The store a connection for ``use`` validates against (None when it is empty).

        Registration may use every anchor; any other use only the platform anchors.
        """
        return self._registration_store if use is Use.REGISTRATION else self._platform_store

    def is_bootstrap(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` is one of the registration-only anchors."""
        return bool(self._bootstrap_fingerprints) and (
            cert.fingerprint(_SHA256) in self._bootstrap_fingerprints
        )

    @property
    def has_bootstrap(self) -> bool:
        """True when the set holds registration-only anchors."""
        return bool(self.registration_only)


@lru_cache(maxsize=16)
def _cached(
    platform: tuple[x509.Certificate, ...], bootstrap: tuple[x509.Certificate, ...]
) -> AnchorSet:
    return AnchorSet(platform, bootstrap)


def anchor_set_for(
    platform: Iterable[x509.Certificate], registration_only: Iterable[x509.Certificate] = ()
) -> AnchorSet:
    """An ``AnchorSet`` for these anchors, reused while the same anchors are passed again.

    Certificates hash by their DER, so the key is the anchor content itself: a new trust
    store version gets a new set, an unchanged one reuses the prebuilt stores.
    """
    return _cached(tuple(platform), tuple(registration_only))
