"""The values of a registration: pending state, results, and the cloud URL rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from hybridge.connector.credentials import Registration
from hybridge.connector.errors import RegistrationError
from hybridge.truststore import CloudApplyResult

TRUST_MODES = ("auto", "manual")


@dataclass(frozen=True)
class PendingRegistration:
    """A registration between the redirect and the callback, kept in the admin's session.

    Server-side session data only (the cookie holds a random id): the verifier and state
    never reach the browser except as the state parameter itself.
    """

    state: str
    code_verifier: str
    cloud_url: str
    trust_mode: str
    key_fp: str
    required_organisation: str
    started_at: str

    def to_data(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: Any) -> PendingRegistration | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except KeyError:
            return None


@dataclass(frozen=True)
class RegistrationResult:
    """What the callback did: the stored registration and the CA list it installed."""

    registration: Registration
    applied: CloudApplyResult | None


@dataclass(frozen=True)
class CloudHealth:
    """Whether the cloud is reachable over the platform trust store right now."""

    ok: bool
    detail: str
    needed_ca: str | None = None


@dataclass(frozen=True)
class DeregistrationResult:
    """Local removal always happens; ``cloud_told`` says whether the cloud acknowledged."""

    connector_id: str
    cloud_told: bool
    cloud_error: str | None
    anchors_removed: tuple[str, ...]


def check_cloud_url(value: str) -> str:
    """``value`` as ``https://host[:port]`` (no path, query, fragment or user info).

    Raises:
        RegistrationError: anything else.
    """
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    # RFC 6749 §10.9 / §3.1: the authorization server is reached over TLS only.
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or len(url) > 2000
    ):
        raise RegistrationError(
            f"cloud URL {value[:200]!r} refused; give https://HOST or https://HOST:PORT"
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise RegistrationError(f"cloud URL {value[:200]!r} refused: bad port") from exc
    return url


def make_csr(key: Any, hostname: str) -> str:
    """A PEM PKCS#10 request signed by ``key``, subject CN = ``hostname`` (protocol step 4)."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")
