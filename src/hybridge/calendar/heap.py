"""Giving freed heap memory back to the operating system after a burst of syncs.

An initial sync (or the catch-up after streaming reconnects) parses hundreds of
SyncFolderItems pages — up to ~0.5 MB of XML each — on several worker threads at once.
glibc's allocator gives threads their own arenas and keeps the freed pages of each arena
mapped, so after the burst the connector's resident set stays at the burst's high-water
mark although that memory is free: on a 1,000-mailbox connector that was several MiB, a
fifth of the whole per-mailbox budget. ``malloc_trim(0)`` hands the free pages of every
arena back (since glibc 2.8 also the pages inside a heap, with ``MADV_DONTNEED``).

The same allocator also creates up to eight arenas per core as threads come and go (sync
workers, streaming groups, the web server); each keeps its live blocks and partly used
pages resident, about 1 MiB apiece after a sync. :func:`limit_arenas` caps their number
for the whole process (``mallopt(M_ARENA_MAX)``, what the ``MALLOC_ARENA_MAX`` environment
variable does at start); the connector's calendar service calls it when it starts.

The standard library has no call for either, hence ctypes (two C functions, no state). On
another C library (musl, macOS) both do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_trim: Any = None
_looked_up = False


#: glibc malloc.h: ``#define M_ARENA_MAX -8``.
_M_ARENA_MAX = -8
_mallopt: Any = None


def _glibc() -> tuple[Any, Any]:
    """(malloc_trim, mallopt) of glibc, or (None, None) on another C library."""
    global _trim, _mallopt, _looked_up
    with _lock:
        if not _looked_up:
            _looked_up = True
            trim: Any
            mallopt: Any
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c"))
                trim, mallopt = libc.malloc_trim, libc.mallopt  # glibc only
            except (OSError, AttributeError, TypeError):
                trim = mallopt = None
            if trim is not None and mallopt is not None:
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
                mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                mallopt.restype = ctypes.c_int
                _trim, _mallopt = trim, mallopt
        return _trim, _mallopt


def release_free_heap() -> bool:
    """Return the C heap's free pages to the OS; False when the C library cannot."""
    trim, _ = _glibc()
    if trim is None:
        return False
    trim(0)
    return True


def limit_arenas(count: int) -> bool:
    """Let the process's threads share at most ``count`` malloc arenas from now on (arenas
    already made stay); False when the C library cannot. Raises ValueError below 1."""
    if count < 1:
        raise ValueError(f"arena count {count!r} must be at least 1")
    _, mallopt = _glibc()
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, count))


class BurstTrimmer:
    """Calls :func:`release_free_heap` when a burst of at least ``min_syncs`` syncs ends.

    ``sync_done(quiet)`` is told after every sync whether the engine is now quiet (nothing
    in flight); a trim happens then, at most once per ``min_interval`` seconds and only after
    ``min_syncs`` syncs, so that a steady trickle of single-mailbox syncs (one notification
    each) does not pay for one each. A trim costs well under a millisecond on a
    1,000-mailbox connector's heap; the interval is short so that the end of a burst, which
    matters most, is not skipped for having come just after a quiet moment within it.
    """

    def __init__(
        self,
        *,
        min_syncs: int = 16,
        min_interval: float = 1.0,
        clock: Callable[[], float],
        release: Callable[[], bool] = release_free_heap,
    ) -> None:
        if min_syncs < 1 or min_interval < 0:
            raise ValueError(
                f"min_syncs {min_syncs!r} must be >= 1 and min_interval {min_interval!r} >= 0"
            )
        self.min_syncs = min_syncs
        self.min_interval = min_interval
        self._clock = clock
        self._release = release
        self._lock = threading.Lock()
        self._since = 0
        self._last: float | None = None
        #: Trims made (for tests and metrics).
        self.trims = 0

    def sync_done(self, quiet: bool) -> bool:
        """Count one sync; trim when the burst is over. Returns True when it trimmed."""
        with self._lock:
            self._since += 1
            now = self._clock()
            due = (
                quiet
                and self._since >= self.min_syncs
                and (self._last is None or now - self._last >= self.min_interval)
            )
            if not due:
                return False
            self._since = 0
            self._last = now
        return self._trim()

    def burst_done(self) -> bool:
        """The caller knows a burst just ended (``run_due`` returned): trim now if at least
        ``min_syncs`` syncs went untrimmed, whatever the interval. True when it trimmed."""
        with self._lock:
            if self._since < self.min_syncs:
                return False
            self._since = 0
            self._last = self._clock()
        return self._trim()

    def _trim(self) -> bool:
        released = self._release()
        if released:
            with self._lock:
                self.trims += 1
        return released
