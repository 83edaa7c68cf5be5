"""``TrustStore``: the connector's anchor sets in the node database, and the exported bundle.

Every change follows one order, under an exclusive lock on the data directory (so that a
CLI command and a running connector never interleave):

1. check every input certificate, before touching anything (all or nothing);
2. one database transaction: the anchor rows *and* the audit record;
3. rewrite ``<data_dir>/trust-bundle.pem`` atomically from the committed rows.

A crash between 2 and 3 leaves the old complete bundle; ``open_trust_store`` compares the
bundle with the database and rewrites it when they differ, which is the repair.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import structlog

from hybridge.core.pki import fingerprint_sha256
from hybridge.storage import StorageError
from hybridge.storage.db import open_database, sqlite_url
from hybridge.truststore.bundle import (
    BUNDLE_NAME,
    crash_point,
    remove_stale_temporaries,
    render_bundle,
    write_atomically,
)
from hybridge.truststore.checks import check_cloud_set, manual_problem, parse_source, read_sources
from hybridge.truststore.errors import (
    CertificatesRejected,
    CloudManagedAnchor,
    InvalidFingerprint,
    Reject,
    StaleCloudSet,
    TrustStoreError,
    TrustStoreIOError,
)
from hybridge.truststore.fingerprints import normalize_fingerprint, resolve
from hybridge.truststore.interfaces import (
    AddResult,
    AnchorSource,
    CertificateSource,
    CloudApplyResult,
    Duplicate,
)
from hybridge.truststore.models import AnchorRow
from hybridge.truststore.records import (
    CLOUD_SEQUENCE,
    add_audit,
    anchor_rows,
    bundle_pairs,
    cloud_sequence,
    fingerprint_of,
    replace_cloud_rows,
    set_state,
)
from hybridge.truststore.view import TrustStoreView, utc_now

log = structlog.get_logger(__name__)

DATABASE_NAME = "hybridge.db"
LOCK_NAME = ".truststore.lock"
#: A removal names anchors by at least this many hex digits: a shorter prefix is too easy to
#: mistype into the wrong anchor for a destructive command (``show`` accepts any prefix).
MIN_REMOVE_PREFIX = 8


class TrustStore(TrustStoreView):
    """The manual and cloud anchors of one data directory: reading (``TrustStoreView``) and
    every change, each under the data directory's lock and followed by the bundle export.

    Use ``open_trust_store`` to build one: it prepares the directory and repairs the bundle.
    """

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock, not a lock row: it is released by the kernel when a holder is killed, so a
        # crashed CLI never leaves the store locked.
        try:
            handle = open(self.data_dir / LOCK_NAME, "a+b")  # noqa: SIM115 - held for the block
        except OSError as exc:
            raise TrustStoreIOError(
                f"cannot lock the trust store in {str(self.data_dir)!r}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            handle.close()

    def _export(self) -> None:
        """Rewrite the bundle after a committed change."""
        with self._db.transaction() as session:
            pairs = bundle_pairs(session)
        try:
            write_atomically(self.bundle_path, render_bundle(pairs))
        except TrustStoreIOError as exc:
            # The change is committed: say so, rather than let the admin believe it failed.
            raise TrustStoreIOError(
                f"the change was saved but {BUNDLE_NAME} could not be rewritten ({exc}); "
                "it is rewritten the next time the trust store is opened"
            ) from exc

    def sync_bundle(self) -> bool:
        """Make the exported bundle match the database; returns True if it was rewritten.

        Called by ``open_trust_store``: a process killed between its commit and its export
        left the previous bundle, which this replaces and records in the audit log.
        """
        with self._locked():
            remove_stale_temporaries(self.data_dir)
            with self._db.transaction() as session:
                pairs = bundle_pairs(session)
            expected = render_bundle(pairs)
            try:
                current: bytes | None = self.bundle_path.read_bytes()
            except FileNotFoundError:
                current = None
            except OSError as exc:
                raise TrustStoreIOError(
                    f"cannot read {str(self.bundle_path)!r}: {exc.strerror}"
                ) from exc
            if current == expected:
                return False
            write_atomically(self.bundle_path, expected)
            if current is None and not pairs:
                return True  # a new, empty store: creating the file is not a repair
            with self._db.transaction() as session:
                add_audit(
                    session,
                    at=self._now(),
                    actor="system:truststore",
                    action="trust.bundle_repaired",
                    detail=(
                        f"{BUNDLE_NAME} was missing"
                        if current is None
                        else f"{BUNDLE_NAME} differed from the database"
                    )
                    + f"; rewritten with {len(pairs)} anchors",
                )
            return True

    # -- changes --------------------------------------------------------------------------

    def add_manual(
        self, sources: Sequence[CertificateSource], *, actor: str, allow_non_ca: bool = False
    ) -> AddResult:
        """Add every certificate of ``sources`` as manual anchors, all or nothing.

        Returns the fingerprints added and the duplicates skipped (same SHA-256 already in
        the store, or earlier in the same batch).

        Raises:
            CertificatesRejected: an input or certificate is malformed, invalid, or not a CA
                (unless ``allow_non_ca``); lists each one by input, index and reason.
        """
        return self._add(sources, actor=actor, allow_non_ca=allow_non_ca, prior_rejects=())

    def add_manual_files(
        self, paths: Sequence[Path], *, actor: str, allow_non_ca: bool = False, max_bytes: int
    ) -> AddResult:
        """``add_manual`` on files, each read up to ``max_bytes`` (a larger file is refused).

        Raises:
            CertificatesRejected: as ``add_manual``; unreadable or too large files included.
        """
        sources, rejects = read_sources(paths, max_bytes=max_bytes)
        return self._add(sources, actor=actor, allow_non_ca=allow_non_ca, prior_rejects=rejects)

    def _add(
        self,
        sources: Sequence[CertificateSource],
        *,
        actor: str,
        allow_non_ca: bool,
        prior_rejects: Sequence[Reject],
    ) -> AddResult:
        now = self._now()
        rejects = list(prior_rejects)
        candidates: list[tuple[str, int, bytes]] = []
        subjects: dict[str, str] = {}
        for source in sources:
            for index, der, cert in parse_source(source, rejects):
                problem = manual_problem(cert, now, allow_non_ca=allow_non_ca)
                if problem is not None:
                    rejects.append(Reject(source.name, index, problem))
                else:
                    candidates.append((source.name, index, der))
                    subjects[fingerprint_sha256(der)] = cert.subject.rfc4514_string()
        if rejects:
            raise CertificatesRejected("nothing was added", rejects)
        if not candidates:
            raise CertificatesRejected(
                "nothing was added", [Reject("input", None, "no file was given")]
            )

        added: list[str] = []
        duplicates: list[Duplicate] = []
        with self._locked():
            with self._db.transaction() as session:
                existing = {row.fingerprint_sha256: row.source for row in anchor_rows(session)}
                for name, index, der in candidates:
                    fingerprint = fingerprint_sha256(der)
                    if fingerprint in existing:
                        duplicates.append(
                            Duplicate(name, index, fingerprint, existing[fingerprint])
                        )
                        continue
                    existing[fingerprint] = "batch"
                    added.append(fingerprint)
                    session.add(
                        AnchorRow(
                            fingerprint_sha256=fingerprint,
                            der=der,
                            source=AnchorSource.MANUAL.value,
                            added_at=now,
                            added_by=actor,
                            cloud_sequence=None,
                        )
                    )
                if added:
                    add_audit(
                        session,
                        at=now,
                        actor=actor,
                        action="trust.add",
                        added=added,
                        detail=f"{len(added)} manual anchors added, {len(duplicates)} duplicates",
                    )
            if added:
                crash_point("after-commit")
                self._export()
        return AddResult(tuple(added), tuple(duplicates), {fp: subjects[fp] for fp in added})

    def remove_manual(self, fingerprints: Sequence[str], *, actor: str) -> tuple[str, ...]:
        """Remove manual anchors named by fingerprint (or a unique prefix of 8+ digits).

        All or nothing. Returns the full fingerprints removed.

        Raises:
            InvalidFingerprint, AnchorNotFound, AmbiguousFingerprint: a name does not match
                exactly one anchor.
            CloudManagedAnchor: a named anchor belongs to the cloud set.
        """
        if not fingerprints:
            raise InvalidFingerprint("name at least one fingerprint to remove")
        for text in fingerprints:
            if len(normalize_fingerprint(text)) < MIN_REMOVE_PREFIX:
                raise InvalidFingerprint(
                    f"{text!r} is too short to remove by; give at least {MIN_REMOVE_PREFIX} "
                    "hex digits of the SHA-256 fingerprint"
                )
        with self._locked():
            with self._db.transaction() as session:
                rows = anchor_rows(session)
                chosen: dict[str, AnchorRow] = {}
                for text in fingerprints:
                    row = resolve(rows, text, fingerprint_of)
                    if row.source == AnchorSource.CLOUD.value:
                        # DESIGN.md §3 invariant 2: the cloud set changes only by a cloud push,
                        # so that the platform's trust follows the cloud's published list.
                        raise CloudManagedAnchor(
                            f"anchor {row.fingerprint_sha256} is managed by the cloud; it "
                            "leaves the store when the cloud's CA list drops it, it cannot be "
                            "removed by hand"
                        )
                    chosen[row.fingerprint_sha256] = row
                for row in chosen.values():
                    session.delete(row)
                add_audit(
                    session,
                    at=self._now(),
                    actor=actor,
                    action="trust.remove",
                    removed=list(chosen),
                    detail=f"{len(chosen)} manual anchors removed",
                )
            crash_point("after-commit")
            self._export()
        return tuple(sorted(chosen))

    def apply_cloud_set(
        self, certs_der: Sequence[bytes], *, actor: str, sequence: int
    ) -> CloudApplyResult:
        """Replace the cloud set with ``certs_der`` in one transaction; manual anchors stay.

        A certificate of the set that is already a manual anchor stays manual and is
        reported in ``kept_manual``. The installed sequence becomes ``sequence``.

        Raises:
            CertificatesRejected: a certificate is malformed, not a CA, expired, not yet
                valid, weak or invalid, or the set is empty; the installed set is kept.
            StaleCloudSet: ``sequence`` is not higher than the installed one.
        """
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise TrustStoreError(
                f"cloud set sequence {sequence!r} refused; a non-negative integer is expected"
            )
        what = f"cloud CA set {sequence} refused, the installed set is kept"
        now = self._now()
        target, rejects = check_cloud_set(certs_der, now)
        if rejects:
            raise CertificatesRejected(what, rejects)

        with self._locked():
            with self._db.transaction() as session:
                installed = cloud_sequence(session)
                # DESIGN.md §3 invariant 2: only a sequence above the installed one, so that a
                # replayed or reordered older set can never roll the list back.
                if installed is not None and sequence <= installed:
                    raise StaleCloudSet(
                        f"cloud CA set {sequence} refused: sequence {installed} is installed and "
                        "only a higher sequence replaces it"
                    )
                result = replace_cloud_rows(
                    session, target, sequence=sequence, actor=actor, now=now
                )
                set_state(session, CLOUD_SEQUENCE, str(sequence), now)
                detail = f"sequence {sequence} installed (was {installed})"
                if result.kept_manual:
                    detail += f"; kept as manual: {', '.join(result.kept_manual)}"
                add_audit(
                    session,
                    at=self._now(),
                    actor=actor,
                    action="trust.cloud_apply",
                    added=result.added,
                    removed=result.removed,
                    detail=detail,
                )
            crash_point("after-commit")
            self._export()
        return result


def open_trust_store(
    data_dir: Path,
    *,
    bootstrap_file: Path | None = None,
    clock: Callable[[], datetime] = utc_now,
    database_url: str | None = None,
) -> TrustStore:
    """Open (creating if needed) the trust store of ``data_dir`` and repair its bundle.

    The directory is created with mode 0700 (it holds the node's database); the database is
    ``<data_dir>/hybridge.db`` unless ``database_url`` names another one.

    Raises:
        TrustStoreIOError: the directory cannot be created or written.
        StorageError: the database cannot be opened or migrated.
    """
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TrustStoreIOError(
            f"cannot create the data directory {str(data_dir)!r}: {exc.strerror}"
        ) from exc
    if not data_dir.is_dir():
        raise TrustStoreIOError(f"data directory {str(data_dir)!r} is not a directory")
    database = open_database(database_url or sqlite_url(data_dir / DATABASE_NAME), "node")
    store = TrustStore(database, data_dir, bootstrap_file=bootstrap_file, clock=clock)
    try:
        store.sync_bundle()
    except (TrustStoreError, StorageError):
        store.close()
        raise
    return store
