"""What the connector does with a push or a command: check, apply, answer (no network here).

A push is judged in the order of DESIGN.md §3 invariant 2: signature with the list-signing
key learned at registration (``core.manifest``: EdDSA only, explicit type), addressed to
*this* connector (a per-connector push must carry ``aud``; a broadcast manifest is not
accepted on the channel), sequence above the installed one, then every certificate by the
trust store, which applies the set atomically (the previous set stays on any failure),
rewrites the exported bundle and audits the diff. The answer is an ``Ack`` of the applied
sequence or a ``Refusal`` with the stable reason, which the cloud records.

Commands are verified by ``core.control.verify_command`` against the last command id this
connector accepted, kept in ``control-state.json`` next to the trust store (written
atomically) so that a restart does not reopen the replay window.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hybridge.connector.credentials import CredentialStore, Registration, clear_cloud_anchors
from hybridge.core.control import (
    Ack,
    Refusal,
)
from hybridge.core.control_commands import (
    Command,
    CommandError,
    verify_command,
)
from hybridge.core.manifest import ManifestError, read_unverified, verify_manifest
from hybridge.storage.db import Database
from hybridge.truststore import TrustStore, TrustStoreError
from hybridge.truststore.errors import CertificatesRejected, StaleCloudSet

log = structlog.get_logger(__name__)

STATE_FILE = "control-state.json"


@dataclass(frozen=True)
class PushOutcome:
    """The answer to send, and what the dashboard shows about the last push."""

    answer: Ack | Refusal
    sequence: int | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def list_signing_key(registration: Registration) -> Ed25519PublicKey:
    """The list-signing public key learned at registration.

    Raises:
        ValueError: the stored key is not an Ed25519 public key.
    """
    key = load_pem_public_key(registration.list_signing_key_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the stored list-signing key is not Ed25519")
    return key


def _claimed_sequence(token: str) -> int | None:
    # For the refusal report only (never for a decision): which sequence was refused.
    try:
        return read_unverified(token)[1].sequence
    except ManifestError:
        return None


def apply_push(
    token: str, registration: Registration, store: TrustStore, now: datetime
) -> PushOutcome:
    """Check the pushed manifest ``token`` and install it; never raises for a bad push."""
    if registration.trust_mode != "auto":
        return PushOutcome(
            Refusal("push", "manual_mode", "this connector's admin manages its anchors"), None
        )
    try:
        manifest = verify_manifest(
            token,
            list_signing_key(registration),
            now=now,
            installed_sequence=store.installed_cloud_sequence(),
            audience=registration.connector_id,
        )
    except ManifestError as exc:
        return _refused(exc.reason, str(exc), _claimed_sequence(token))
    # A push on the channel is always addressed: a broadcast manifest (no aud) could be a
    # copy taken from anywhere and replayed to every connector.
    if manifest.audience is None:
        return _refused(
            "wrong_audience", "the manifest names no connector; a push must", manifest.sequence
        )
    try:
        applied = store.apply_cloud_set(
            manifest.certificates,
            actor=f"cloud:{registration.cloud_url}",
            sequence=manifest.sequence,
        )
    except CertificatesRejected as exc:
        return _refused("rejected_certificates", str(exc), manifest.sequence)
    except StaleCloudSet as exc:
        return _refused("stale_sequence", str(exc), manifest.sequence)
    except TrustStoreError as exc:
        return _refused("store_error", str(exc), manifest.sequence)
    log.info(
        "connector.control_push_applied",
        sequence=manifest.sequence,
        added=list(applied.added),
        removed=list(applied.removed),
    )
    return PushOutcome(
        Ack(seq=manifest.sequence),
        manifest.sequence,
        tuple(applied.added),
        tuple(applied.removed),
    )


def _refused(reason: str, detail: str, sequence: int | None) -> PushOutcome:
    log.warning("connector.control_push_refused", reason=reason, detail=detail, seq=sequence)
    return PushOutcome(Refusal("push", reason, detail[:2000], seq=sequence), sequence)


class CommandLedger:
    """The last command id accepted from the cloud, kept on disk across restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE

    def last(self, connector_id: str) -> int | None:
        """The last id accepted for ``connector_id`` (``None``: none yet, or another id)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("connector_id") != connector_id:
            return None
        value = data.get("last_command_id")
        return value if type(value) is int else None

    def record(self, connector_id: str, command_id: int) -> None:
        """Remember ``command_id`` (write to a temporary file, fsync, rename)."""
        body = json.dumps({"connector_id": connector_id, "last_command_id": command_id})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".control-state-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def check_command(
    token: str, registration: Registration, ledger: CommandLedger, now: datetime
) -> Command | Refusal:
    """The verified command (its id recorded as used), or the refusal to report."""
    try:
        command = verify_command(
            token,
            list_signing_key(registration),
            now=now,
            audience=registration.connector_id,
            last_command_id=ledger.last(registration.connector_id),
        )
    except CommandError as exc:
        log.warning("connector.control_command_refused", reason=exc.reason, detail=str(exc))
        return Refusal("command", exc.reason, str(exc)[:2000])
    # Recorded before acting: a crash while acting must not let the same command run twice.
    ledger.record(registration.connector_id, command.command_id)
    log.info("connector.control_command", command=command.name, command_id=command.command_id)
    return command


def deregister_locally(
    registration: Registration,
    store: TrustStore,
    database: Database,
    credentials: CredentialStore,
    clock: Callable[[], datetime],
) -> tuple[str, ...]:
    """The cloud's signed ``deregister``: remove the cloud anchors and the credential.

    Manual anchors stay. Returns the fingerprints removed.
    """
    actor = f"cloud:{registration.cloud_url}"
    removed = clear_cloud_anchors(store, database, actor=actor, now=clock())
    credentials.delete(registration, actor=actor)
    log.info("connector.deregistered_by_cloud", anchors_removed=len(removed))
    return removed
