"""Benchmark: the calendar connector against the EWS emulator, N mailboxes with a year of
meetings each (issue 8, item 6). A measurement, not pass/fail.

    .venv/bin/python bench/calendar_sync.py [--mailboxes 1000] [--meetings-per-mailbox 260]
        [--changes 50]

Two processes, so that the figures are the connector's: the EWS emulator (TLS on 127.0.0.1,
NTLM; driven over a pipe) runs in a child process, and this process runs only the
connector — ``SyncEngine`` + ``EwsBackend`` (exchangelib, unmodified) with streaming
notifications — and the SQLite stand-in for the cloud's calendar service. Each mailbox's
meetings are a :class:`~hybridge.testing.ews.GeneratedCalendar` (built when read, stored once
written), so 15,000 mailboxes need no seeding time and little emulator memory; the
connector sees the same SOAP as from meetings added one by one. Prints what was run (the
command, mailboxes, meetings each) and:

- initial sync time (every mailbox from no sync state, all meetings to the cloud);
- change-to-seen latency: a meeting created in a random mailbox (in the emulator process)
  until the cloud has it, and change-to-join-details: until the join details are written
  back (p50, p99; both processes read the same monotonic clock);
- TCP connections the emulator accepted from the connector and those open at the end
  (pool + one per streaming group of at most 200 mailboxes), and the connector's sockets;
- the connector's memory per mailbox: resident set growth of this process from before the
  backend existed to after the initial sync and the streaming subscriptions, and the Python
  heap (tracemalloc) kept by a second, traced sync of a sample of mailboxes;
- the emulator process's memory (resident now and peak).

The changes of the latency phase go to mailboxes spread evenly over all N (one in each of
``--changes`` equal slices, at a random place in it), so every streaming group's share of
the mailboxes is exercised, not only the first ones.

Goal in the issue: 15,000 mailboxes per process, p99 change-to-join-details < 3 s,
< 20 KiB per mailbox.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import multiprocessing
import os
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import trustme

from hybridge.calendar.ews import EwsSettings
from hybridge.calendar.ews.backend import EwsBackend
from hybridge.calendar.ews.streaming import EwsStreamingNotifier
from hybridge.calendar.local import LocalCalendarService
from hybridge.calendar.model import Meeting
from hybridge.calendar.state import SyncStateStore
from hybridge.calendar.sync import SyncEngine
from hybridge.core.meetings import JoinDetails
from hybridge.storage.db import open_database, sqlite_url

PASSWORD = "Bench-Imp3rsonation!"  # noqa: S105 - the emulator's own test account
YEAR_START = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
#: Every timestamp compared across the two processes comes from this clock (CLOCK_MONOTONIC
#: is system-wide on Linux).
clock = time.monotonic


def mailbox_names(count: int) -> list[str]:
    return [f"user{i:05d}@contoso.test" for i in range(count)]


def spread_choice(count: int, picks: int, rng: random.Random) -> list[int]:
    """``picks`` mailbox indices spread over 0..count-1: one in each of ``picks`` equal
    slices (all of them, in random order, when picks >= count)."""
    if picks >= count:
        return [i % count for i in range(picks)]
    chosen = [rng.randrange(i * count // picks, (i + 1) * count // picks) for i in range(picks)]
    rng.shuffle(chosen)  # a random order: not group after group
    return chosen


def process_memory(pid: int | str = "self") -> tuple[int, int]:
    """(resident, peak resident) bytes of process ``pid`` (Linux ``/proc/<pid>/status``)."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def open_sockets() -> int:
    """Sockets this process holds open (``/proc/self/fd`` entries that are sockets)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed while listing
    return count


# -- the emulator process -----------------------------------------------------------------------


def emulator_main(
    pipe: Connection, mailboxes: int, meetings: int, minute: float, cert: str, key: str
) -> None:  # pragma: no cover - runs in the child process
    """Set up and serve the emulator; answer the parent's commands until ``stop``."""
    from hybridge.testing.ews import (
        DirectoryAccount,
        EmulatorConfig,
        EwsEmulator,
        GeneratedCalendar,
        ImpersonationAssignment,
    )

    users = mailbox_names(mailboxes)
    accounts = [DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False)]
    accounts += [DirectoryAccount(u, u.split("@")[0], "x") for u in users]
    config = EmulatorConfig(
        accounts=tuple(accounts),
        impersonation=(ImpersonationAssignment("Hybridge", "svc-hybridge"),),
        streaming_heartbeat_seconds=5.0,
        streaming_minute_seconds=minute,
    )
    began = clock()
    emulator = EwsEmulator(config, cert_file=Path(cert), key_file=Path(key))
    # A year of meetings (every 10th with @webex), built on demand: see GeneratedCalendar.
    plan = GeneratedCalendar(meetings=meetings, first_start=YEAR_START)
    for u in users:
        emulator.store.generate_calendar(u, plan)
    seeded = clock() - began
    emulator.start()
    pipe.send(("ready", emulator.ews_url, seeded))
    while True:
        command, *args = pipe.recv()
        if command == "add":
            user, subject = args
            item = emulator.store.add_calendar_item(
                user,
                subject=subject,
                start=YEAR_START + dt.timedelta(days=400),
                end=YEAR_START + dt.timedelta(days=400, minutes=30),
                body="Please join",
            )
            pipe.send((item.item_id, clock()))
        elif command == "stats":
            resident, peak = process_memory()
            pipe.send(
                {
                    "accepted": emulator.connections_accepted,
                    "open": emulator.connections_open,
                    "rss": resident,
                    "peak": peak,
                    "threads": threading.active_count(),
                }
            )
        else:
            emulator.stop()
            pipe.send("stopped")
            return


class EmulatorProcess:
    """The parent's handle on the emulator process."""

    def __init__(self, mailboxes: int, meetings: int, minute: float, cert: Path, key: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self.process = context.Process(
            target=emulator_main,
            args=(child, mailboxes, meetings, minute, str(cert), str(key)),
            name="ews-emulator",
            daemon=True,
        )
        self.process.start()
        _, self.ews_url, self.seeded = self._pipe.recv()

    def add(self, user: str, subject: str) -> tuple[str, float]:
        self._pipe.send(("add", user, subject))
        item_id, at = self._pipe.recv()
        return str(item_id), float(at)

    def stats(self) -> dict[str, int]:
        """Connections accepted / open, resident and peak memory, threads."""
        self._pipe.send(("stats",))
        return dict(self._pipe.recv())

    def stop(self) -> None:
        self._pipe.send(("stop",))
        self._pipe.recv()
        self.process.join(30)


# -- the connector side -------------------------------------------------------------------------


class TimedCloud(LocalCalendarService):
    """The local calendar service, noting when each benchmark change is first seen.

    Without fsync: it stands in for the cloud, whose own durability is not the connector's
    cost (the connector's sync state keeps its full durability).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._conn.execute("PRAGMA synchronous=OFF")
        self.seen: dict[str, float] = {}

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        if meeting.subject.startswith("bench-change-"):
            self.seen.setdefault(meeting.subject, clock())
        return super().meeting_changed(meeting)


class TimedNotifications:
    """The streaming notifier's callback: notes when a timed mailbox's change arrived,
    which splits a change's latency into delivery (Exchange -> connector) and sync."""

    def __init__(self, notify: Any) -> None:
        self._notify = notify
        self.watching: dict[str, float] = {}  # mailbox -> when its change was made
        self.arrived: dict[str, float] = {}

    def __call__(self, mailbox: str) -> None:
        made = self.watching.get(mailbox)
        if made is not None and mailbox not in self.arrived:
            self.arrived[mailbox] = clock()
        self._notify(mailbox)


class TimedBackend(EwsBackend):
    """EwsBackend noting when join details were written for a benchmark change, and when
    the first SyncFolderItems of a changed mailbox began (``watching``: mailbox -> when
    its change was made)."""

    written: dict[str, float]
    watching: dict[str, float]
    synced: dict[str, float]

    def changes(self, mailbox: str, state: str | None, *, max_changes: int) -> Any:
        if mailbox in self.watching and mailbox not in self.synced:
            self.synced[mailbox] = clock()
        return super().changes(mailbox, state, max_changes=max_changes)

    def write_join_details(self, mailbox: str, meeting_id: str, details: Any) -> Any:
        outcome = super().write_join_details(mailbox, meeting_id, details)
        if outcome == "written":
            self.written.setdefault(meeting_id, clock())
        return outcome


def heap_after_sync(
    settings: EwsSettings, context: ssl.SSLContext, db: Any, users: list[str], workers: int
) -> int:
    """Python heap the connector keeps after syncing ``users`` (a second, traced pass).

    Traced separately because tracemalloc slows everything it watches; the timed pass
    runs without it. The stand-in cloud's allocations are excluded.
    """
    scratch_dir = Path(tempfile.mkdtemp(prefix="hybridge-calbench-"))
    scratch = LocalCalendarService(scratch_dir / "c.db")
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.take_snapshot()
    backend = EwsBackend(settings, PASSWORD, ssl_context=context, max_connections=workers)
    engine = SyncEngine(
        backend, SyncStateStore(db, "bench-heap"), scratch, page_size=512, workers=workers
    )
    engine.set_mailboxes(users)
    engine.run_due()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    excluded = ("/hybridge/calendar/local.py", "/sqlite3/", "calendar_sync.py")
    kept = sum(
        s.size_diff
        for s in after.compare_to(baseline, "traceback")
        if not any(x in str(s.traceback) for x in excluded)
    )
    engine.close()
    backend.close()
    scratch.close()
    shutil.rmtree(scratch_dir, ignore_errors=True)
    return kept


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument(
        "--meetings-per-mailbox",
        "--meetings",
        dest="meetings",
        type=int,
        default=260,
        help="meetings in each mailbox, spread over a year (default 260: a year of them)",
    )
    parser.add_argument("--changes", type=int, default=50, help="changes timed, 1..")
    parser.add_argument(
        "--change-interval", type=float, default=0.05, help="seconds between two changes"
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=512, help="SyncFolderItems 1..512")
    parser.add_argument(
        "--heap-sample", type=int, default=200, help="mailboxes in the traced heap pass"
    )
    parser.add_argument(
        "--connection-minutes",
        type=int,
        default=29,
        help="GetStreamingEvents ConnectionTimeout the connector asks for (renewal period)",
    )
    parser.add_argument(
        "--emulated-minute",
        type=float,
        default=60.0,
        help="seconds the emulator counts as a streaming minute (less: renewals happen "
        "during the run, e.g. 2 makes a 29-minute connection last 58 s)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=None,
        help="seconds to wait for every streaming group to connect and the catch-up "
        "syncs to end (default: 600 s or 0.2 s per mailbox, whichever is more)",
    )
    args = parser.parse_args()
    if args.mailboxes < 1 or args.meetings < 0 or args.changes < 1:
        parser.error("--mailboxes and --changes must be at least 1, meetings at least 0")
    if args.settle_timeout is None:
        args.settle_timeout = max(600.0, 0.2 * args.mailboxes)

    work = Path(tempfile.mkdtemp(prefix="hybridge-calbench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    context = ssl.create_default_context(cafile=None)
    context.load_verify_locations(cadata=ca.cert_pem.bytes().decode())

    users = mailbox_names(args.mailboxes)
    emulator = EmulatorProcess(
        args.mailboxes, args.meetings, args.emulated_minute, work / "cert.pem", work / "key.pem"
    )
    try:
        report = run(args, users, emulator, context, work)
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report))


def note(message: str) -> None:
    """Progress on stderr, so that a long run shows where it is (the report goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _wait(condition: Any, timeout: float, every: float = 0.05) -> bool:
    """Poll ``condition()`` every ``every`` seconds until true or ``timeout`` seconds have
    passed; whether it became true."""
    deadline = clock() + timeout
    while not condition():
        if clock() >= deadline:
            return False
        time.sleep(every)
    return True


def run(
    args: argparse.Namespace,
    users: list[str],
    emulator: EmulatorProcess,
    context: ssl.SSLContext,
    work: Path,
) -> list[str]:
    db = open_database(sqlite_url(work / "node.db"), "node")
    cloud = TimedCloud(work / "cloud.sqlite")
    settings = EwsSettings(
        username="CONTOSO\\svc-hybridge", test_mailbox=users[0], ews_url=emulator.ews_url
    )
    emulator_start = emulator.stats()
    gc.collect()
    rss_before = process_memory()[0]
    cpu_before = time.process_time()
    backend = TimedBackend(settings, PASSWORD, ssl_context=context, max_connections=args.workers)
    backend.written, backend.watching, backend.synced = {}, {}, {}
    engine = SyncEngine(
        backend,
        SyncStateStore(db, "bench"),
        cloud,
        page_size=args.page_size,
        poll_interval=3600,
        workers=args.workers,
    )
    engine.set_mailboxes(users)
    note(f"initial sync of {len(users)} mailboxes")
    began = clock()
    outcomes = engine.run_due()
    initial = clock() - began
    initial_cpu = time.process_time() - cpu_before
    upserts = sum(o.upserts for o in outcomes)
    joins = sum(o.joins_written for o in outcomes)
    failed = [o for o in outcomes if o.state.value != "idle"]
    after_sync = emulator.stats()
    rss_synced = process_memory()[0]

    notifier = EwsStreamingNotifier(backend, connection_minutes=args.connection_minutes)
    stop = threading.Event()
    runner = threading.Thread(target=engine.run_forever, args=(stop,), kwargs={"max_wait": 0.5})
    note(f"initial sync took {clock() - began:.1f} s; subscribing")
    subscribing = clock()
    cpu_subscribing = time.process_time()
    notifications = TimedNotifications(engine.notify)
    notifications.watching = backend.watching
    notifier.watch(users, notifications)
    runner.start()
    # Wait until every group has subscribed and connected, and the catch-up syncs that a
    # (re)connection triggers are done: changes are measured from a quiet connector.
    settled = _wait(
        lambda: notifier.connections_opened >= len(notifier.groups) and engine.quiet,
        args.settle_timeout,
        # engine.quiet scans every mailbox under the engine's lock: polling it often at
        # 15,000 mailboxes would take the connector's CPU we are measuring.
        every=0.5,
    )
    subscribed = clock() - subscribing
    subscribe_cpu = time.process_time() - cpu_subscribing
    groups = notifier.groups
    time.sleep(0.5)
    gc.collect()
    rss_after = process_memory()[0]
    sockets = open_sockets()
    live_before = notifier.live_connections
    opened_before = notifier.connections_opened
    note(f"settled={settled} after {subscribed:.1f} s; {args.changes} changes")
    rng = random.Random(8)
    picks = spread_choice(len(users), args.changes, rng)
    group_of = {m: n for n, group in enumerate(groups) for m in group}
    made: dict[str, tuple[str, float]] = {}
    changing = clock()
    for i, index in enumerate(picks):
        subject = f"bench-change-{i} @webex"
        notifications.watching[users[index]] = clock()
        made[subject] = emulator.add(users[index], subject)
        time.sleep(args.change_interval)
    ids = {item_id for item_id, _ in made.values()}
    _wait(
        lambda: len(cloud.seen) >= len(made) and len(ids & backend.written.keys()) >= len(ids), 60
    )
    changes_took = clock() - changing
    renewed = notifier.connections_opened - opened_before
    live_end = notifier.live_connections
    end = emulator.stats()
    note(f"{len(backend.written)}/{len(made)} written; heap pass")
    stop.set()
    notifier.stop()
    runner.join(10)
    engine.close()
    connector_heap = heap_after_sync(settings, context, db, users[: args.heap_sample], args.workers)
    backend.close()

    seen = [cloud.seen[s] - at for s, (_, at) in made.items() if s in cloud.seen]
    # The change was made after watching[m] was set and before emulator.add returned: the
    # arrival is measured from the later of the two, as the others are.
    arrived = [
        notifications.arrived[users[i]] - at
        for i, (_, (_, at)) in zip(picks, made.items(), strict=True)
        if users[i] in notifications.arrived
    ]
    synced = [
        backend.synced[users[i]] - at
        for i, (_, (_, at)) in zip(picks, made.items(), strict=True)
        if users[i] in backend.synced
    ]
    written = [backend.written[i] - at for _, (i, at) in made.items() if i in backend.written]
    sample = min(args.heap_sample, len(users))
    n = args.mailboxes
    mib = 1024 * 1024
    largest = max((len(g) for g in groups), default=0)
    hit_groups = len({group_of.get(users[i]) for i in picks} - {None})
    report = [
        "command                        " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        f"mailboxes                      {n}",
        f"meetings per mailbox           {args.meetings} over a year (generated on demand "
        f"by the emulator; set up in {emulator.seeded:.1f} s, in its own process)",
        f"initial sync                   {initial:.1f} s  ({upserts} meetings to the cloud, "
        f"{joins} join details written, {upserts / max(initial, 1e-9):.0f} meetings/s, "
        f"{len(failed)} mailboxes not idle; connector CPU {initial_cpu:.1f} s = "
        f"{initial_cpu / max(upserts, 1) * 1000:.2f} ms per meeting, "
        f"{initial_cpu / n * 1000:.1f} ms per mailbox)",
        f"streaming subscriptions        {subscribed:.1f} s for {len(groups)} groups of at "
        f"most {largest} mailboxes (Subscribe per mailbox, one GetStreamingEvents per "
        f"group, then a catch-up sync per mailbox; connector CPU {subscribe_cpu:.1f} s)"
        + ("" if settled else f"  NOT SETTLED within {args.settle_timeout:.0f} s"),
    ]
    report.append(
        f"changes                        {len(made)} new meetings with @webex, one every "
        f"{args.change_interval * 1000:.0f} ms, in mailboxes #{min(picks)}..#{max(picks)} "
        f"({len(set(picks))} distinct, in {hit_groups} of {len(groups)} streaming groups); "
        f"{changes_took:.1f} s until the last was written or 60 s passed"
    )
    if arrived:
        report.append(
            f"change -> connector notified   p50 {statistics.median(arrived) * 1000:.0f} ms  "
            f"p99 {percentile(arrived, 99) * 1000:.0f} ms  max {max(arrived) * 1000:.0f} ms  "
            f"(streaming delivery; {len(arrived)}/{len(made)} arrived)"
        )
    if synced:
        report.append(
            f"change -> its sync begins      p50 {statistics.median(synced) * 1000:.0f} ms  "
            f"p99 {percentile(synced, 99) * 1000:.0f} ms  max {max(synced) * 1000:.0f} ms  "
            f"(SyncFolderItems sent; {len(synced)}/{len(made)})"
        )
    if seen:
        report.append(
            f"change -> cloud sees it        p50 {statistics.median(seen) * 1000:.0f} ms  "
            f"p99 {percentile(seen, 99) * 1000:.0f} ms  max {max(seen) * 1000:.0f} ms  "
            f"({len(seen)}/{len(made)} seen)"
        )
    else:
        report.append(f"change -> cloud sees it        none of {len(made)} seen within 60 s")
    if written:
        report.append(
            f"change -> join details written p50 {statistics.median(written) * 1000:.0f} ms  "
            f"p99 {percentile(written, 99) * 1000:.0f} ms  max {max(written) * 1000:.0f} ms  "
            f"({len(written)}/{len(made)} written; goal p99 < 3000 ms)"
        )
    else:
        report.append(f"change -> join details written none of {len(made)} within 60 s")
    report += [
        f"connections to Exchange        {after_sync['accepted'] - emulator_start['accepted']}"
        f" accepted during the initial sync ({args.workers} workers), "
        f"{end['accepted'] - emulator_start['accepted']} by the end of the changes; "
        f"{end['open']} open at the end ({len(groups)} streaming groups, "
        f"{live_before} streaming responses live before the changes, {live_end} after; "
        f"{renewed} connections (re)opened during the changes); connector sockets "
        f"{sockets}; the traced pass is not counted",
        f"streaming renewal              every {args.connection_minutes} emulated minutes of "
        f"{args.emulated_minute:g} s = {args.connection_minutes * args.emulated_minute:.0f} s",
        f"connector RSS per mailbox      {(rss_after - rss_before) / n / 1024:.1f} KiB "
        f"(resident growth through sync and subscriptions: {(rss_after - rss_before) / mib:.0f}"
        f" MiB; after the initial sync alone {(rss_synced - rss_before) / n / 1024:.1f} KiB;"
        f" goal < 20 KiB)",
        f"connector heap per mailbox     {connector_heap / sample / 1024:.1f} KiB "
        f"(tracemalloc, second pass over {sample} mailboxes)",
        f"emulator memory                {end['rss'] / mib:.0f} MiB resident at the end, "
        f"peak {end['peak'] / mib:.0f} MiB, {emulator_start['rss'] / mib:.0f} MiB before the "
        f"sync; {end['threads']} threads",
    ]
    db.dispose()
    cloud.close()
    return report


if __name__ == "__main__":
    main()
