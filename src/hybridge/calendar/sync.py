"""The sync engine: every enabled mailbox's calendar, kept in step with the cloud.

One :class:`SyncEngine` per calendar configuration (one backend, one service account).
Each mailbox has a small state machine (``_TRANSITIONS``)::

    due ──▶ syncing ──▶ idle ──(poll interval / notification)──▶ due
              │  ├──▶ backoff ──(retry-after elapsed)──▶ due    throttled: this mailbox only
              │  └──▶ error ──(error_retry elapsed)──▶ due      denied, no such mailbox
              └─────▶ paused (whole configuration, on 401) ──resume()──▶ due
    any ──▶ removed (user no longer enabled; in-flight work stops at the next change)

A sync drains the mailbox's change list page by page. Each page goes to the
:class:`MeetingSink` first, join details are written back, and only then is the page's
sync state persisted: a crash re-delivers at most that page (the sink is idempotent) and
never skips one. An invalid sync state starts a full resync of that mailbox alone; when it
finishes, the sink is told which meetings still exist (``retain_only``), so deletions made
while the state was lost are not missed.

Mailboxes sync on a small thread pool, one worker per mailbox at a time: a throttled or slow
mailbox holds one worker for one request at most and is then rescheduled, never waited on.
Time comes from ``clock`` (monotonic seconds), so tests can drive it.

Memory is per watched mailbox, and a connector watches up to 15,000: a mailbox is a
``__slots__`` record of a few words (no lock, event or backend object of its own), its sync
state lives in the database only, and nothing of a meeting is kept after its page.
"""

from __future__ import annotations

import heapq
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

from hybridge.calendar.errors import (
    BackendError,
    CalendarError,
    CredentialsRejectedError,
    ImpersonationDeniedError,
    InvalidSyncStateError,
    MailboxNotFoundError,
    MailboxThrottledError,
    MeetingNotFoundError,
)
from hybridge.calendar.heap import BurstTrimmer
from hybridge.calendar.interfaces import CalendarBackend, MeetingSink, UserSource
from hybridge.calendar.model import Meeting
from hybridge.calendar.state import SyncStateStore
from hybridge.core.meetings import apply_join_details

log = logging.getLogger(__name__)


class MailboxState(Enum):
    DUE = "due"
    SYNCING = "syncing"
    IDLE = "idle"
    BACKOFF = "backoff"
    ERROR = "error"
    PAUSED = "paused"
    REMOVED = "removed"


S = MailboxState
#: Allowed transitions; anything else is a bug and raises.
_TRANSITIONS: dict[MailboxState, frozenset[MailboxState]] = {
    S.DUE: frozenset({S.SYNCING, S.PAUSED, S.REMOVED}),
    S.SYNCING: frozenset({S.IDLE, S.BACKOFF, S.ERROR, S.PAUSED, S.REMOVED, S.DUE}),
    # IDLE, BACKOFF and ERROR become SYNCING directly when their time has come.
    S.IDLE: frozenset({S.DUE, S.SYNCING, S.PAUSED, S.REMOVED}),
    S.BACKOFF: frozenset({S.DUE, S.SYNCING, S.PAUSED, S.REMOVED}),
    S.ERROR: frozenset({S.DUE, S.SYNCING, S.PAUSED, S.REMOVED}),
    S.PAUSED: frozenset({S.DUE, S.REMOVED, S.PAUSED}),
    S.REMOVED: frozenset(),
}


class EngineStateError(CalendarError):
    """A mailbox was asked to make a transition its state machine does not allow (a bug)."""


@dataclass(frozen=True)
class Alarm:
    """An alarm for the connector's admin (and the cloud portal)."""

    code: str
    message: str


@dataclass(frozen=True)
class SyncOutcome:
    """What one sync of one mailbox did."""

    mailbox: str
    state: MailboxState
    upserts: int = 0
    deletes: int = 0
    joins_written: int = 0
    pages: int = 0
    resynced: bool = False
    reason: str = ""


class _Mailbox:
    """One watched mailbox: a few words, no lock or event of its own (15,000 per engine).

    ``busy`` (a worker holds the mailbox) changes only under the engine's lock; ``removed``
    is a plain flag read without it (set once, never cleared).
    """

    __slots__ = ("address", "busy", "dirty", "due_at", "reason", "removed", "state")

    def __init__(self, address: str, state: MailboxState, due_at: float) -> None:
        self.address = address
        self.state = state
        self.due_at = due_at
        self.reason = ""
        #: A worker is syncing it (or remove() claimed it): others leave it alone.
        self.busy = False
        #: Set by remove(): checked before every delivery, so in-flight work stops.
        self.removed = False
        #: A notification arrived while syncing: sync again right after, not at the next poll.
        self.dirty = False


class SyncEngine:
    """Keeps the mailboxes of one calendar configuration in sync with a :class:`MeetingSink`."""

    def __init__(
        self,
        backend: CalendarBackend,
        store: SyncStateStore,
        sink: MeetingSink,
        *,
        page_size: int = 100,
        poll_interval: float = 300.0,
        error_retry: float = 600.0,
        workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
        on_alarm: Callable[[Alarm], None] | None = None,
        trim_heap: bool = True,
    ) -> None:
        self.backend = backend
        self.store = store
        self.sink = sink
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.error_retry = error_retry
        self.clock = clock
        self.alarms: list[Alarm] = []
        self._on_alarm = on_alarm
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._mailboxes: dict[str, _Mailbox] = {}
        #: (due_at, address) of every schedulable mailbox, a min-heap: the run loop pops what
        #: is due instead of scanning 15,000 mailboxes on every wake-up. An entry whose
        #: mailbox has since moved (another due_at, busy, paused, removed) is stale and
        #: skipped when popped; every move pushes a fresh one.
        self._timers: list[tuple[float, str]] = []
        self._paused_reason = ""
        self._inflight: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calendar-sync")
        #: After a burst of syncs (initial sync, catch-up after a reconnect) the freed
        #: parse buffers go back to the OS instead of staying resident (see calendar.heap).
        self._trimmer = BurstTrimmer(clock=clock) if trim_heap else None

    # -- the state machine --------------------------------------------------------------------

    def _move(self, box: _Mailbox, to: MailboxState, reason: str = "", due_in: float = 0.0) -> None:
        with self._lock:
            if box.state is MailboxState.REMOVED and to is not MailboxState.REMOVED:
                return  # removed while in flight: stays removed
            if box.state is MailboxState.PAUSED and to in (S.SYNCING, S.IDLE, S.BACKOFF, S.ERROR):
                return  # paused while in flight: the worker's ending does not unpause it
            if to not in _TRANSITIONS[box.state] and to is not box.state:
                raise EngineStateError(
                    f"mailbox {box.address!r}: no transition {box.state.value} -> {to.value}"
                )
            box.state, box.reason = to, reason
            box.due_at = self.clock() + due_in
            self._schedule(box)
            self._wake.notify_all()

    def _schedule(self, box: _Mailbox) -> None:
        """Put ``box`` on the timer heap at its ``due_at`` (caller holds the lock)."""
        if box.state not in (MailboxState.SYNCING, MailboxState.PAUSED, MailboxState.REMOVED):
            heapq.heappush(self._timers, (box.due_at, box.address))

    def state_of(self, mailbox: str) -> tuple[MailboxState, str]:
        """(state, reason) of a mailbox; REMOVED when unknown."""
        with self._lock:
            box = self._mailboxes.get(mailbox.lower())
            return (box.state, box.reason) if box else (MailboxState.REMOVED, "")

    @property
    def paused(self) -> bool:
        return bool(self._paused_reason)

    @property
    def quiet(self) -> bool:
        """True when no mailbox is being synced or due now (benchmarks wait for this)."""
        with self._lock:
            busy = bool(self._inflight)
        return not busy and not self.due()

    # -- users --------------------------------------------------------------------------------

    def set_mailboxes(self, mailboxes: Iterable[str]) -> tuple[list[str], list[str]]:
        """Watch exactly ``mailboxes`` (from the UserSource); returns (added, removed)."""
        # Interned: one string per address, shared with the caller's list and the notifier.
        wanted = {sys.intern(m.lower()) for m in mailboxes}
        with self._lock:
            current = set(self._mailboxes)
        added = sorted(wanted - current)
        removed = sorted(current - wanted)
        for address in removed:
            self.remove(address)
        with self._lock:
            for address in added:
                state = MailboxState.PAUSED if self._paused_reason else MailboxState.DUE
                box = self._mailboxes[address] = _Mailbox(address, state, self.clock())
                self._schedule(box)
            self._wake.notify_all()
        return added, removed

    def apply_users(self, source: UserSource) -> tuple[list[str], list[str]]:
        """Watch exactly the users ``source`` says are enabled; returns (added, removed)."""
        return self.set_mailboxes(source.enabled_mailboxes())

    def mailboxes(self) -> list[str]:
        with self._lock:
            return sorted(self._mailboxes)

    def remove(self, mailbox: str) -> None:
        """Stop watching ``mailbox`` and make the cloud forget its meetings.

        A sync in flight stops before its next delivery; we wait for it (at most one
        change's work) so no meeting of the removed user reaches the sink afterwards.
        """
        key = mailbox.lower()
        with self._lock:
            box = self._mailboxes.get(key)
            if box is None:
                return
            box.removed = True
            while box.busy:  # the worker sees ``removed`` before its next delivery
                self._wake.wait()
            box.busy = True  # ours now: no sync starts on it again
        self._move(box, MailboxState.REMOVED)
        with self._lock:
            self._mailboxes.pop(key, None)
        self.store.delete(key)
        self.sink.user_removed(key)
        forget = getattr(self.backend, "forget", None)
        if callable(forget):
            forget(key)

    def notify(self, mailbox: str) -> None:
        """A push notification said ``mailbox`` changed: sync it soon (unless backing off)."""
        with self._lock:
            box = self._mailboxes.get(mailbox.lower())
        if box is None:
            return
        with self._lock:
            if box.state is MailboxState.IDLE:
                box.state, box.due_at = MailboxState.DUE, self.clock()
                self._schedule(box)
                self._wake.notify_all()
            elif box.state is MailboxState.SYNCING:
                box.dirty = True

    # -- pausing the configuration ------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        with self._lock:
            first = not self._paused_reason
            self._paused_reason = reason
            boxes = list(self._mailboxes.values())
        for box in boxes:
            self._move(box, MailboxState.PAUSED, reason)
        if first:
            alarm = Alarm("impersonation_password_rejected", reason)
            self.alarms.append(alarm)
            log.error("calendar configuration %s paused: %s", self.store.config, reason)
            if self._on_alarm is not None:
                self._on_alarm(alarm)

    def resume(self, backend: CalendarBackend | None = None) -> None:
        """Resume after the admin fixed the password (optionally with a new backend)."""
        if backend is not None:
            self.backend = backend
        with self._lock:
            self._paused_reason = ""
            boxes = list(self._mailboxes.values())
        for box in boxes:
            self._move(box, MailboxState.DUE)

    # -- syncing ------------------------------------------------------------------------------

    def due(self) -> list[str]:
        """Mailboxes whose turn it is (due, or backoff/idle/error whose time has come)."""
        now = self.clock()
        out = []
        with self._lock:
            for box in self._mailboxes.values():
                if box.state in (MailboxState.SYNCING, MailboxState.PAUSED):
                    continue
                if box.address in self._inflight:
                    continue
                if box.state is MailboxState.DUE or box.due_at <= now:
                    out.append(box.address)
        return out

    def _submit(self, mailbox: str) -> Future[SyncOutcome]:
        with self._lock:
            self._inflight.add(mailbox)
        future = self._pool.submit(self.sync_mailbox, mailbox)

        def done(f: Future[SyncOutcome]) -> None:
            with self._lock:
                self._inflight.discard(mailbox)
                quiet = not self._inflight
                self._wake.notify_all()
            if self._trimmer is not None:
                self._trimmer.sync_done(quiet)
            if not f.cancelled() and f.exception() is not None:
                log.error("sync of %s crashed", mailbox, exc_info=f.exception())

        future.add_done_callback(done)
        return future

    def run_due(self) -> list[SyncOutcome]:
        """Sync every due mailbox concurrently; returns when each has had its turn.

        Raises what a sync raised that is not a BackendError (a sink failure): that is a
        crash, and the caller decides (tests use it to simulate one).
        """
        futures = [self._submit(m) for m in self.due()]
        outcomes = [f.result() for f in futures]
        if self._trimmer is not None:
            # Deterministic: the done callbacks that would trim may still be running.
            self._trimmer.burst_done()
        return outcomes

    def sync_mailbox(self, mailbox: str) -> SyncOutcome:
        """Drain ``mailbox``'s change list into the sink; never raises a BackendError."""
        key = mailbox.lower()
        with self._lock:
            box = self._mailboxes.get(key)
            if box is not None:
                if box.busy:
                    return SyncOutcome(key, MailboxState.SYNCING)  # another worker has it
                box.busy = True
        if box is None:
            return SyncOutcome(key, MailboxState.REMOVED)
        try:
            if box.removed or box.state is MailboxState.PAUSED:
                return SyncOutcome(key, box.state)
            self._move(box, MailboxState.SYNCING)
            with self._lock:
                box.dirty = False
            try:
                return self._drain(box)
            except BaseException:
                # Not a backend failure (those are handled): the sink or the database broke.
                # Leave the mailbox retryable, never stuck in "syncing".
                self._move(box, MailboxState.BACKOFF, "sync crashed", min(60.0, self.error_retry))
                raise
        finally:
            with self._lock:
                box.busy = False
                self._wake.notify_all()  # remove() may be waiting for this mailbox

    def _drain(self, box: _Mailbox) -> SyncOutcome:
        counts = {"upserts": 0, "deletes": 0, "joins": 0, "pages": 0}
        row = self.store.load(box.address)
        # A resync interrupted by a restart starts over: its "seen" set was in memory.
        resyncing = row.resyncing
        state = None if resyncing else row.sync_state
        seen: set[str] | None = set() if resyncing else None
        resynced = resyncing
        invalid_retries = 0

        def outcome(st: MailboxState, reason: str = "") -> SyncOutcome:
            return SyncOutcome(
                box.address,
                st,
                counts["upserts"],
                counts["deletes"],
                counts["joins"],
                counts["pages"],
                resynced,
                reason,
            )

        while True:
            try:
                page = self.backend.changes(box.address, state, max_changes=self.page_size)
                for change in page.changes:
                    if box.removed:
                        return outcome(MailboxState.REMOVED)
                    if change.meeting is not None:
                        counts["joins"] += self._deliver(box, change.meeting)
                        counts["upserts"] += 1
                        if seen is not None:
                            seen.add(change.meeting_id)
                    else:
                        self.sink.meeting_deleted(box.address, change.meeting_id)
                        counts["deletes"] += 1
            except InvalidSyncStateError as exc:
                invalid_retries += 1
                if invalid_retries > 1:  # refused even from scratch: an error, not a loop
                    return self._fail(box, exc, outcome)
                log.warning("%s: sync state refused, resyncing this mailbox", box.address)
                self.store.save(box.address, None, resyncing=True)
                state, seen, resynced = None, set(), True
                continue
            except CredentialsRejectedError as exc:
                self._pause(str(exc))
                return outcome(MailboxState.PAUSED, str(exc))
            except MailboxThrottledError as exc:
                # This mailbox waits; the pool moves on to the others.
                self._move(box, MailboxState.BACKOFF, str(exc), exc.retry_after_seconds)
                return outcome(MailboxState.BACKOFF, str(exc))
            except (ImpersonationDeniedError, MailboxNotFoundError) as exc:
                return self._fail(box, exc, outcome)
            except BackendError as exc:
                self._move(box, MailboxState.BACKOFF, str(exc), min(60.0, self.poll_interval))
                return outcome(MailboxState.BACKOFF, str(exc))
            if box.removed:
                return outcome(MailboxState.REMOVED)
            counts["pages"] += 1
            done = not page.more
            if done and seen is not None:
                self.sink.retain_only(box.address, frozenset(seen))
            # Persisted only after the sink saw the page: a crash re-delivers, never skips.
            self.store.save(box.address, page.state, resyncing=seen is not None and not done)
            if done:
                break
            state = page.state
        if row.status != "ok":
            self.sink.user_status(box.address, "ok", "")
        with self._lock:
            again = box.dirty
        self._move(box, MailboxState.IDLE, due_in=0.0 if again else self.poll_interval)
        return outcome(MailboxState.IDLE)

    def _fail(
        self, box: _Mailbox, exc: BackendError, outcome: Callable[[MailboxState, str], SyncOutcome]
    ) -> SyncOutcome:
        reason = str(exc)
        log.warning("%s: calendar sync error: %s", box.address, reason)
        self.store.set_status(box.address, "error", reason)
        self.sink.user_status(box.address, "error", reason)
        self._move(box, MailboxState.ERROR, reason, self.error_retry)
        return outcome(MailboxState.ERROR, reason)

    def _deliver(self, box: _Mailbox, meeting: Meeting) -> int:
        """Send one meeting to the sink and write its join details; returns writes made."""
        details = self.sink.meeting_changed(meeting)
        if box.removed:
            return 0  # removed while the sink had it: no longer ours to write
        if not meeting.organized_here:
            return 0  # an attendee's copy: the organizer's mailbox carries the details
        wanted = details if meeting.keyword is not None else None
        # Decide on the body we already have: most changes need no write at all (and the
        # change our own write causes comes back here and stops).
        if apply_join_details(meeting.body, wanted, meeting.body_type) == meeting.body:
            return 0
        try:
            written = self.backend.write_join_details(meeting.mailbox, meeting.meeting_id, wanted)
        except MeetingNotFoundError:
            return 0  # deleted meanwhile; its Delete comes in a later page
        return 1 if written == "written" else 0

    # -- running ------------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event, *, max_wait: float = 1.0) -> None:
        """Sync due mailboxes until ``stop`` is set; sleeps until something is due.

        A sync that crashes (a sink failure) is logged and its mailbox retried at its next
        due time; the loop goes on.
        """
        while not stop.is_set():
            # Submit without waiting: one slow mailbox never holds back the next due one.
            for mailbox in self._pop_due():
                self._submit(mailbox)
            with self._lock:
                timeout = max_wait
                if self._timers:
                    timeout = max(0.0, min(max_wait, self._timers[0][0] - self.clock()))
                if timeout > 0:
                    self._wake.wait(timeout)

    def _pop_due(self) -> list[str]:
        """The mailboxes whose timer has come, popped from the heap (what :meth:`due`
        finds by a full scan, at the cost of the due ones only)."""
        out: list[str] = []
        with self._lock:
            now, timers = self.clock(), self._timers
            while timers and timers[0][0] <= now:
                due_at, address = heapq.heappop(timers)
                box = self._mailboxes.get(address)
                if (
                    box is None
                    or box.due_at != due_at  # moved since: a newer entry stands for it
                    or box.state in (MailboxState.SYNCING, MailboxState.PAUSED)
                    or address in self._inflight
                ):
                    continue
                self._inflight.add(address)  # claimed: a duplicate entry skips it
                out.append(address)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)
