"""Out-of-office reads, spread evenly over a period, a few at a time, off the supervisor.

EWS reads automatic replies with ``GetUserOofSettings``, one mailbox per request (the
operation takes a single ``Mailbox``; there is no batch form), and Graph likewise reads one
user's ``mailboxSettings`` per call. So reading every user's status costs N requests per
period; what we control is when they happen:

- **evenly**: each mailbox has a fixed *phase* in the period (a hash of its address), and a
  round reads the mailboxes whose phase passed since the previous round. The load is a
  constant N / period requests per second — 15,000 mailboxes over a 15-minute period is
  16.7 requests/s; over the default 5 minutes (``status_interval``), 50/s — instead of
  bursts, and a restart or a change to the user list moves nobody's turn;
- **bounded**: the reads run on their own pool of :data:`CONCURRENCY` threads (never the
  sync workers, never the supervisor thread, which only collects finished results), and at
  most :data:`MAX_PENDING` wait for it: a mailbox that would overflow, or whose previous read
  has not finished, waits for its next turn;
- **complete**: every watched mailbox is read once per period (the first time within one
  period of the start), whatever N is; the previous design read 20 mailboxes per 5-second
  round, a 62-minute cycle at 15,000.

Memory: one float and one reference per watched mailbox (the phases in an ``array``), plus
the reads in flight.
"""

from __future__ import annotations

import bisect
import threading
import zlib
from array import array
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: Out-of-office reads in flight at once (EWS throttling counts concurrent requests of the
#: service account: EWSMaxConcurrency is 27 by default, the sync workers use 8 of them).
CONCURRENCY = 4
#: Reads waiting for a thread at most; beyond this a mailbox waits for its next turn.
MAX_PENDING = 1024

Reader = Callable[[str], Any]


def phase(mailbox: str, period: float) -> float:
    """The fixed offset of ``mailbox``'s reads within ``period`` (0 <= phase < period).

    CRC-32 spreads addresses evenly enough for scheduling; nothing depends on it being
    unpredictable.
    """
    return zlib.crc32(mailbox.encode()) / 2**32 * period


class OofReader:
    """Reads each watched mailbox's out-of-office settings once per ``period`` seconds.

    ``read(mailbox)`` (run on the pool) returns the value to report, or raises; a failure is
    logged and the mailbox is read again at its next turn. The supervisor calls
    :meth:`watch` when the user list changes, :meth:`due` every round and submits those it
    wants read with :meth:`submit`, and takes finished results with :meth:`collect`.
    """

    def __init__(
        self,
        read: Reader,
        *,
        period: float,
        concurrency: int = CONCURRENCY,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if period <= 0:
            raise ValueError(f"out-of-office period {period!r} must be > 0 seconds")
        if not 1 <= concurrency <= 64:
            raise ValueError(f"out-of-office concurrency {concurrency!r} must be 1..64")
        self.period = period
        self.max_pending = max_pending
        self._read = read
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="oof-read")
        self._lock = threading.Lock()
        self._phases = array("d")
        self._mailboxes: list[str] = []
        self._watched: frozenset[str] = frozenset()
        self._last: float | None = None
        self._pending: set[str] = set()
        self._results: dict[str, Any] = {}
        #: Reads started and failed (for the page and tests).
        self.started = 0
        self.failed = 0

    def watch(self, mailboxes: Iterable[str]) -> None:
        """Read exactly ``mailboxes`` from now on (finished results of others are dropped)."""
        wanted = frozenset(mailboxes)
        if wanted == self._watched:
            return
        ordered = sorted((phase(m, self.period), m) for m in wanted)
        with self._lock:
            self._watched = wanted
            self._phases = array("d", (p for p, _ in ordered))
            self._mailboxes = [m for _, m in ordered]
            for gone in [m for m in self._results if m not in wanted]:
                del self._results[gone]

    def due(self, now: float) -> list[str]:
        """The mailboxes whose turn came since the previous call (none on the first call,
        which starts the schedule at ``now``)."""
        with self._lock:
            last, self._last = self._last, now
            if last is None or now <= last:
                return []
            if now - last >= self.period:
                return list(self._mailboxes)  # a whole period passed: everyone's turn came
            start, end = last % self.period, now % self.period
            if start < end:
                return self._between(start, end)
            # The window wraps past the period's end.
            return self._between(start, self.period) + self._between(-1.0, end)

    def _between(self, low: float, high: float) -> list[str]:
        """Mailboxes with low < phase <= high (called under the lock)."""
        lo = bisect.bisect_right(self._phases, low)
        hi = bisect.bisect_right(self._phases, high)
        return self._mailboxes[lo:hi]

    def submit(self, mailbox: str) -> bool:
        """Queue a read of ``mailbox``; False when one is already pending or the queue is full."""
        with self._lock:
            if mailbox in self._pending or len(self._pending) >= self.max_pending:
                return False
            self._pending.add(mailbox)
            self.started += 1
        try:
            self._pool.submit(self._run, mailbox)
        except RuntimeError:  # closed meanwhile: the service is stopping
            with self._lock:
                self._pending.discard(mailbox)
            return False
        return True

    def _run(self, mailbox: str) -> None:
        try:
            value = self._read(mailbox)
        except Exception as exc:  # one mailbox's failure waits for its next turn
            with self._lock:
                self.failed += 1
                self._pending.discard(mailbox)
            log.info("connector.calendar_oof_unread", mailbox=mailbox, error=str(exc))
            return
        with self._lock:
            self._pending.discard(mailbox)
            if mailbox in self._watched:
                self._results[mailbox] = value

    def collect(self) -> dict[str, Any]:
        """Results finished since the last call: mailbox -> value."""
        with self._lock:
            results, self._results = self._results, {}
        return results

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Stop taking reads; waits for those running (each bounded by the EWS timeout)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
