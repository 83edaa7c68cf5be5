"""The exported platform bundle: a PEM file rewritten atomically after every change.

Atomic replacement is written by hand because the standard library has no "write a file
atomically" call and the recipe is short: write a temporary file in the same directory,
fsync it, ``os.replace`` it over the old one (atomic on POSIX within one file system), then
fsync the directory so that the rename itself survives a power cut. A reader therefore sees
the old complete bundle or the new complete bundle, never a partial one.

Test hook (the one place it is read): ``HYBRIDGE_TEST_CRASH_POINT`` set to
``after-commit`` or ``mid-export`` makes the process SIGKILL itself at that point, so that
tests can prove the crash guarantees with a real killed process. Unset in production.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hybridge.core.pki import to_pem
from hybridge.truststore.errors import TrustStoreIOError

BUNDLE_NAME = "trust-bundle.pem"
_TMP_SUFFIX = ".tmp"
CRASH_POINT_ENV = "HYBRIDGE_TEST_CRASH_POINT"
CRASH_POINTS = ("after-commit", "mid-export")


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if the test hook asks for a crash at ``name``."""
    if name not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {name!r}; known: {CRASH_POINTS}")
    if os.environ.get(CRASH_POINT_ENV) == name:
        # SIGKILL, not an exception: no finally block, no atexit, exactly like a power cut
        # as far as the process is concerned.
        os.kill(os.getpid(), signal.SIGKILL)


def render_bundle(anchors: Iterable[tuple[str, bytes]]) -> bytes:
    """The bundle's bytes: one PEM block per ``(fingerprint, der)``, in fingerprint order.

    Each block is preceded by a comment line with its fingerprint (hex only, so no text
    from a certificate can inject a line into the file). Sorting makes the file a pure
    function of the set, which is what lets ``open`` compare it with the database.
    """
    parts = [
        f"# SHA-256 {fingerprint}\n{to_pem(der)}"
        for fingerprint, der in sorted(anchors, key=lambda item: item[0])
    ]
    text = "".join(part if part.endswith("\n") else part + "\n" for part in parts)
    return text.encode("ascii")


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole.

    Raises:
        TrustStoreIOError: the directory or the file cannot be written.
    """
    directory = path.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise TrustStoreIOError(f"cannot write in {str(directory)!r}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            half = len(data) // 2
            handle.write(data[:half])
            handle.flush()
            crash_point("mid-export")
            handle.write(data[half:])
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_directory(directory)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TrustStoreIOError(f"cannot write {str(path)!r}: {exc.strerror}") from exc


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path, name: str = BUNDLE_NAME) -> list[Path]:
    """Delete temporary files a killed writer left behind; returns the ones removed."""
    removed = []
    for leftover in directory.glob(f".{name}.*{_TMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed
