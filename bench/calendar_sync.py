"""Benchmark: the calendar connector against the EWS emulator, N mailboxes with a year of
meetings each (issue 8, item 6). A measurement, not pass/fail.

    .venv/bin/python bench/calendar_sync.py [--mailboxes 1000] [--meetings 260] [--changes 50]

Two processes, so that the figures are the connector's: the EWS emulator (TLS on 127.0.0.1,
NTLM; seeded and driven over a pipe) runs in a child process, and this process runs only
the connector — ``SyncEngine`` + ``EwsBackend`` (exchangelib, unmodified) with streaming
notifications — and the SQLite stand-in for the cloud's calendar service. Prints:

- initial sync time (every mailbox from no sync state, all meetings to the cloud);
- change-to-seen latency: a meeting created in a random mailbox (in the emulator process)
  until the cloud has it, and change-to-join-details: until the join details are written
  back (p50, p99; both processes read the same monotonic clock);
- TCP connections the emulator accepted from the connector (pool + streaming groups);
- the connector's memory per mailbox: resident set growth of this process from before the
  backend existed to after the initial sync and the streaming subscriptions, and the Python
  heap (tracemalloc) kept by a second, traced sync of a sample of mailboxes.

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


# -- the emulator process -----------------------------------------------------------------------


def emulator_main(
    pipe: Connection, mailboxes: int, meetings: int, cert: str, key: str
) -> None:  # pragma: no cover - runs in the child process
    """Seed and serve the emulator; answer the parent's commands until ``stop``."""
    from hybridge.testing.ews import (
        DirectoryAccount,
        EmulatorConfig,
        EwsEmulator,
        ImpersonationAssignment,
    )

    users = mailbox_names(mailboxes)
    accounts = [DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False)]
    accounts += [DirectoryAccount(u, u.split("@")[0], "x") for u in users]
    config = EmulatorConfig(
        accounts=tuple(accounts),
        impersonation=(ImpersonationAssignment("Hybridge", "svc-hybridge"),),
        streaming_heartbeat_seconds=5.0,
    )
    emulator = EwsEmulator(config, cert_file=Path(cert), key_file=Path(key))
    accepted = 0
    original_get_request = emulator._httpd.get_request

    def counting_get_request() -> Any:
        nonlocal accepted
        accepted += 1
        return original_get_request()

    emulator._httpd.get_request = counting_get_request  # type: ignore[method-assign]
    began = clock()
    for u in users:
        for k in range(meetings):
            start = YEAR_START + dt.timedelta(days=k * 365 // max(1, meetings), hours=k % 8)
            emulator.store.add_calendar_item(
                u,
                subject=f"Meeting {k}" + (" @webex" if k % 10 == 0 else ""),
                start=start,
                end=start + dt.timedelta(minutes=30),
                body="Agenda",
                required_attendees=[users[(k + 1) % len(users)]],
            )
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
        elif command == "accepted":
            pipe.send(accepted)
        else:
            emulator.stop()
            pipe.send("stopped")
            return


class EmulatorProcess:
    """The parent's handle on the emulator process."""

    def __init__(self, mailboxes: int, meetings: int, cert: Path, key: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self.process = context.Process(
            target=emulator_main,
            args=(child, mailboxes, meetings, str(cert), str(key)),
            name="ews-emulator",
            daemon=True,
        )
        self.process.start()
        _, self.ews_url, self.seeded = self._pipe.recv()

    def add(self, user: str, subject: str) -> tuple[str, float]:
        self._pipe.send(("add", user, subject))
        item_id, at = self._pipe.recv()
        return str(item_id), float(at)

    def accepted(self) -> int:
        self._pipe.send(("accepted",))
        return int(self._pipe.recv())

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


class TimedBackend(EwsBackend):
    """EwsBackend noting when join details were written for a benchmark change."""

    written: dict[str, float]

    def write_join_details(self, mailbox: str, meeting_id: str, details: Any) -> Any:
        outcome = super().write_join_details(mailbox, meeting_id, details)
        if outcome == "written":
            self.written.setdefault(meeting_id, clock())
        return outcome


def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def heap_after_sync(
    settings: EwsSettings, context: ssl.SSLContext, db: Any, users: list[str], workers: int
) -> int:
    """Python heap the connector keeps after syncing ``users`` (a second, traced pass).

    Traced separately because tracemalloc slows everything it watches; the timed pass
    runs without it. The stand-in cloud's allocations are excluded.
    """
    scratch = LocalCalendarService(Path(tempfile.mkdtemp(prefix="hybridge-calbench-")) / "c.db")
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
    return kept


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--meetings", type=int, default=260, help="per mailbox (a year: 260)")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=512, help="SyncFolderItems 1..512")
    parser.add_argument(
        "--heap-sample", type=int, default=200, help="mailboxes in the traced heap pass"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hybridge-calbench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    context = ssl.create_default_context(cafile=None)
    context.load_verify_locations(cadata=ca.cert_pem.bytes().decode())

    users = mailbox_names(args.mailboxes)
    emulator = EmulatorProcess(args.mailboxes, args.meetings, work / "cert.pem", work / "key.pem")
    try:
        report = run(args, users, emulator, context, work)
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report))


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
    gc.collect()
    rss_before = rss_bytes()
    cpu_before = time.process_time()
    backend = TimedBackend(settings, PASSWORD, ssl_context=context, max_connections=args.workers)
    backend.written = {}
    engine = SyncEngine(
        backend,
        SyncStateStore(db, "bench"),
        cloud,
        page_size=args.page_size,
        poll_interval=3600,
        workers=args.workers,
    )
    engine.set_mailboxes(users)
    began = clock()
    outcomes = engine.run_due()
    initial = clock() - began
    initial_cpu = time.process_time() - cpu_before
    upserts = sum(o.upserts for o in outcomes)
    joins = sum(o.joins_written for o in outcomes)
    failed = [o for o in outcomes if o.state.value != "idle"]
    conns_initial = emulator.accepted()

    notifier = EwsStreamingNotifier(backend, connection_minutes=29)
    stop = threading.Event()
    runner = threading.Thread(target=engine.run_forever, args=(stop,), kwargs={"max_wait": 0.5})
    subscribing = clock()
    notifier.watch(users, engine.notify)
    runner.start()
    # Wait until every group has subscribed and connected, and the catch-up syncs that a
    # (re)connection triggers are done: changes are measured from a quiet connector.
    deadline = clock() + 600
    while clock() < deadline and (
        notifier.connections_opened < len(notifier.groups) or not engine.quiet
    ):
        time.sleep(0.05)
    subscribed = clock() - subscribing
    groups = len(notifier.groups)
    time.sleep(0.5)
    gc.collect()
    rss_after = rss_bytes()
    rng = random.Random(8)
    made: dict[str, tuple[str, float]] = {}
    for i in range(args.changes):
        subject = f"bench-change-{i} @webex"
        made[subject] = emulator.add(rng.choice(users), subject)
        time.sleep(0.05)
    deadline = clock() + 60
    while clock() < deadline and (len(cloud.seen) < len(made) or len(backend.written) < len(made)):
        time.sleep(0.05)
    stop.set()
    notifier.stop()
    runner.join(10)
    engine.close()
    conns_total = emulator.accepted()
    connector_heap = heap_after_sync(settings, context, db, users[: args.heap_sample], args.workers)
    backend.close()

    seen = [cloud.seen[s] - at for s, (_, at) in made.items() if s in cloud.seen]
    written = [backend.written[i] - at for _, (i, at) in made.items() if i in backend.written]
    sample = min(args.heap_sample, len(users))
    report = [
        f"mailboxes                      {args.mailboxes}",
        f"meetings per mailbox           {args.meetings}  (emulator seeding took "
        f"{emulator.seeded:.1f} s, in its own process)",
        f"initial sync                   {initial:.2f} s  ({upserts} meetings to the cloud, "
        f"{joins} join details written, {upserts / initial:.0f} meetings/s, "
        f"{len(failed)} mailboxes not idle; connector CPU {initial_cpu:.1f} s)",
        f"streaming subscriptions        {subscribed:.1f} s for {groups} "
        f"groups (Subscribe per mailbox, then one GetStreamingEvents per group)",
    ]
    if seen:
        report.append(
            f"change -> cloud sees it        p50 {statistics.median(seen) * 1000:.0f} ms  "
            f"p99 {percentile(seen, 99) * 1000:.0f} ms  ({len(seen)}/{len(made)} seen)"
        )
    if written:
        report.append(
            f"change -> join details written p50 {statistics.median(written) * 1000:.0f} ms  "
            f"p99 {percentile(written, 99) * 1000:.0f} ms  ({len(written)}/{len(made)} written)"
        )
    report += [
        f"connections to Exchange        {conns_initial} during the initial sync, "
        f"{conns_total} by the end of the changes (streaming groups: "
        f"{-(-args.mailboxes // 200)}; the traced pass is not counted)",
        f"connector RSS per mailbox      {(rss_after - rss_before) / args.mailboxes / 1024:.1f}"
        f" KiB (resident set growth through sync and subscriptions; goal < 20 KiB)",
        f"connector heap per mailbox     {connector_heap / sample / 1024:.1f} KiB "
        f"(tracemalloc, second pass over {sample} mailboxes)",
    ]
    db.dispose()
    cloud.close()
    return report


if __name__ == "__main__":
    main()
