"""The bootstrap anchor set: read-only roots shipped in the package for the first contact.

DESIGN.md §3 invariant 1: these anchors are used only to reach the cloud's registration
endpoints, never listed, never exported. The default file, ``bootstrap.pem`` next to this
module, is Mozilla's root program as packaged by ``certifi``, captured into the package by
``scripts/capture-bootstrap-roots`` (so an upgrade of certifi never changes it silently).
An operator may point ``HYBRIDGE_BOOTSTRAP_CA_FILE`` (or the ``TrustStore`` parameter) at
a narrower file, e.g. the few roots their cloud actually uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cryptography import x509

from hybridge.core.pki import PkiError, fingerprint_sha256, load_certificates
from hybridge.truststore.errors import BootstrapUnavailable

BOOTSTRAP_ENV = "HYBRIDGE_BOOTSTRAP_CA_FILE"
PACKAGED_NAME = "bootstrap.pem"


@dataclass(frozen=True)
class BootstrapAnchor:
    """One bootstrap root: its fingerprint (what the use log records) and the certificate."""

    fingerprint_sha256: str
    certificate: x509.Certificate = field(repr=False, compare=False)


def configured_bootstrap_file(explicit: Path | None = None) -> Path | None:
    """The operator's bootstrap file: ``explicit``, else ``$HYBRIDGE_BOOTSTRAP_CA_FILE``.

    Returns ``None`` when neither is set, meaning the packaged file.
    """
    if explicit is not None:
        return explicit
    env = os.environ.get(BOOTSTRAP_ENV)
    return Path(env) if env else None


def load_bootstrap(explicit: Path | None = None) -> tuple[str, tuple[BootstrapAnchor, ...]]:
    """Load the bootstrap set; returns where it came from and its anchors.

    Every certificate of the file must load: a bootstrap file is trusted configuration, and
    silently dropping a root would turn into a registration failure far from its cause.

    Raises:
        BootstrapUnavailable: the file cannot be read, or one of its certificates is bad.
    """
    configured = configured_bootstrap_file(explicit)
    try:
        if configured is None:
            origin = f"package file hybridge/truststore/{PACKAGED_NAME}"
            data = resources.files("hybridge.truststore").joinpath(PACKAGED_NAME).read_bytes()
        else:
            origin = str(configured)
            data = configured.read_bytes()
    except OSError as exc:
        raise BootstrapUnavailable(
            f"cannot read the bootstrap CA file {origin!r}: {exc.strerror or exc}; "
            f"set {BOOTSTRAP_ENV} to a readable PEM file"
        ) from exc
    try:
        parsed = load_certificates(data)
    except PkiError as exc:
        raise BootstrapUnavailable(f"bootstrap CA file {origin!r} is unusable: {exc}") from exc
    anchors = []
    for item in parsed:
        if item.certificate is None:
            raise BootstrapUnavailable(
                f"bootstrap CA file {origin!r} certificate {item.index + 1} does not load: "
                f"{item.error}"
            )
        anchors.append(BootstrapAnchor(fingerprint_sha256(item.der), item.certificate))
    return origin, tuple(anchors)
