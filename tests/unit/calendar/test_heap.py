"""The C heap: free pages returned after a burst of syncs, arenas capped (glibc)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from hybridge.calendar.heap import BurstTrimmer, limit_arenas, release_free_heap


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_release_gives_freed_pages_back_to_the_os() -> None:
    # C-heap blocks below the mmap threshold (so they live in the heap), every other one
    # freed: the holes cannot be given back by shrinking the heap from its end (the kept
    # blocks pin it), only by malloc_trim, page by page — the fragmentation a burst of
    # parsing leaves behind.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(800)]  # 50 MiB
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    for block in blocks[::2]:
        libc.free(block)
    before = _resident_kib()
    assert release_free_heap() is True
    after = _resident_kib()
    for block in blocks[1::2]:
        libc.free(block)
    assert before - after > 15 * 1024, (before, after)


def test_trims_once_when_a_burst_ends() -> None:
    clock = Clock()
    calls: list[int] = []
    trimmer = BurstTrimmer(
        min_syncs=3, min_interval=10.0, clock=clock, release=lambda: calls.append(1) or True
    )
    assert not trimmer.sync_done(quiet=False)
    assert not trimmer.sync_done(quiet=True)  # quiet, but only two syncs: no burst
    assert trimmer.sync_done(quiet=True)  # the third: a burst just ended
    assert calls == [1] and trimmer.trims == 1
    # A trickle of single syncs (one notification each) does not trim again...
    assert not trimmer.sync_done(quiet=True)
    # ...nor does another burst within the interval.
    for _ in range(5):
        trimmer.sync_done(quiet=False)
    assert not trimmer.sync_done(quiet=True)
    clock.now = 11.0
    assert trimmer.sync_done(quiet=True)
    assert trimmer.trims == 2


def test_burst_done_trims_untrimmed_work_whatever_the_interval() -> None:
    clock = Clock()
    trimmer = BurstTrimmer(min_syncs=2, min_interval=60.0, clock=clock, release=lambda: True)
    trimmer.sync_done(quiet=False)
    assert not trimmer.burst_done()  # one sync: not a burst
    trimmer.sync_done(quiet=False)
    assert trimmer.burst_done() and trimmer.trims == 1
    assert not trimmer.burst_done()  # nothing new since


def test_no_trim_while_work_is_in_flight() -> None:
    trimmer = BurstTrimmer(min_syncs=1, min_interval=0.0, clock=Clock(), release=lambda: True)
    assert not any(trimmer.sync_done(quiet=False) for _ in range(100))
    assert trimmer.trims == 0


def test_a_c_library_without_malloc_trim_is_not_counted() -> None:
    trimmer = BurstTrimmer(min_syncs=1, min_interval=0.0, clock=Clock(), release=lambda: False)
    assert not trimmer.sync_done(quiet=True)
    assert trimmer.trims == 0


@pytest.mark.parametrize(
    ("min_syncs", "min_interval", "message"),
    [
        (0, 1.0, "min_syncs 0 must be >= 1 and min_interval 1.0 >= 0"),
        (1, -1.0, "min_syncs 1 must be >= 1 and min_interval -1.0 >= 0"),
    ],
)
def test_bad_settings_are_refused(min_syncs: int, min_interval: float, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        BurstTrimmer(min_syncs=min_syncs, min_interval=min_interval, clock=Clock())
    assert str(caught.value) == message


_THREADS_ALLOCATING = """
import ctypes, sys, threading
from hybridge.calendar.heap import limit_arenas
if sys.argv[1] != "default":
    assert limit_arenas(int(sys.argv[1])) is True
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
held, go = [], threading.Barrier(6)
def work():
    go.wait()  # all at once, so that each thread would want an arena of its own
    held.extend(libc.malloc(4096) for _ in range(100))
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
# A thread arena is a 64 MiB reservation; its unused part is mapped without access.
reserved = 0
for line in open("/proc/self/maps"):
    fields = line.split()
    lo, hi = (int(x, 16) for x in fields[0].split("-"))
    if fields[1] == "---p" and len(fields) == 5 and hi - lo >= 16 << 20:
        reserved += 1
print(reserved)
"""


def _arenas_made(arg: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_ALLOCATING, arg],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def test_limit_arenas_makes_threads_share_the_main_arena() -> None:
    assert _arenas_made("default") >= 2  # glibc: a new arena for concurrent threads
    assert _arenas_made("1") == 0  # capped at one: every thread uses the main arena


def test_limit_arenas_refuses_zero() -> None:
    with pytest.raises(ValueError) as caught:
        limit_arenas(0)
    assert str(caught.value) == "arena count 0 must be at least 1"
