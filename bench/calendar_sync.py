"""Benchmark: the calendar connector against the EWS emulator, N mailboxes with a year of
meetings each (issue 8, item 6). A measurement, not pass/fail.

    .venv/bin/python bench/calendar_sync.py [--mailboxes 100] [--meetings 260] [--changes 50]

Runs in one process: the EWS emulator (TLS on 127.0.0.1, NTLM), the connector's
``SyncEngine`` + ``EwsBackend`` (exchangelib, unmodified) with streaming notifications, and
the SQLite stand-in for the cloud's calendar service. Prints:

- initial sync time (every mailbox from no sync state, all meetings to the cloud);
- change-to-seen latency: a meeting created in a random mailbox until the cloud has it,
  and change-to-join-details: until the join details are written back (p50, p99);
- TCP connections the emulator accepted from the connector (pool + streaming groups);
- the connector's Python heap per mailbox after the initial sync (tracemalloc, emulator
  and test-tool allocations excluded; C allocations of lxml are not traced).

Goal in the issue: 15,000 mailboxes per process, p99 change-to-join-details < 3 s,
< 20 KiB per mailbox.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import ssl
import statistics
import tempfile
import threading
import time
import tracemalloc
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
from hybridge.testing.ews import (
    DirectoryAccount,
    EmulatorConfig,
    EwsEmulator,
    ImpersonationAssignment,
)

PASSWORD = "Bench-Imp3rsonation!"  # noqa: S105 - the emulator's own test account
YEAR_START = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)


class TimedCloud(LocalCalendarService):
    """The local calendar service, noting when each benchmark change is first seen."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: dict[str, float] = {}

    def meeting_changed(self, meeting: Meeting) -> JoinDetails | None:
        if meeting.subject.startswith("bench-change-"):
            self.seen.setdefault(meeting.subject, time.perf_counter())
        return super().meeting_changed(meeting)


class TimedBackend(EwsBackend):
    """EwsBackend noting when join details were written for a benchmark change."""

    written: dict[str, float]

    def write_join_details(self, mailbox: str, meeting_id: str, details: Any) -> Any:
        outcome = super().write_join_details(mailbox, meeting_id, details)
        if outcome == "written":
            self.written.setdefault(meeting_id, time.perf_counter())
        return outcome


def heap_after_sync(
    settings: EwsSettings, context: ssl.SSLContext, db: Any, users: list[str], workers: int
) -> int:
    """Python heap the connector keeps after syncing every mailbox (a second, traced pass).

    Traced separately because tracemalloc slows everything it watches; the timed pass above
    runs without it. Emulator-side allocations (this process hosts both) are excluded.
    """
    scratch = LocalCalendarService(Path(tempfile.mkdtemp(prefix="hybridge-calbench-")) / "c.db")
    tracemalloc.start()
    baseline = tracemalloc.take_snapshot()
    backend = EwsBackend(settings, PASSWORD, ssl_context=context, max_connections=workers)
    engine = SyncEngine(
        backend, SyncStateStore(db, "bench-heap"), scratch, page_size=512, workers=workers
    )
    engine.set_mailboxes(users)
    engine.run_due()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    excluded = ("/hybridge/testing/", "/http/server", "/socketserver", "/xml/etree", "/sqlite3/")
    kept = sum(
        s.size_diff
        for s in after.compare_to(baseline, "filename")
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--meetings", type=int, default=260, help="per mailbox (a year: 260)")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hybridge-calbench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    context = ssl.create_default_context(cafile=None)
    context.load_verify_locations(cadata=ca.cert_pem.bytes().decode())

    users = [f"user{i:05d}@contoso.test" for i in range(args.mailboxes)]
    accounts = [DirectoryAccount("svc@contoso.test", "svc-hybridge", PASSWORD, has_mailbox=False)]
    accounts += [DirectoryAccount(u, u.split("@")[0], "x") for u in users]
    config = EmulatorConfig(
        accounts=tuple(accounts),
        impersonation=(ImpersonationAssignment("Hybridge", "svc-hybridge"),),
        streaming_heartbeat_seconds=5.0,
    )
    emulator = EwsEmulator(config, cert_file=work / "cert.pem", key_file=work / "key.pem")
    accepted = 0
    original_get_request = emulator._httpd.get_request

    def counting_get_request() -> Any:
        nonlocal accepted
        accepted += 1
        return original_get_request()

    emulator._httpd.get_request = counting_get_request  # type: ignore[method-assign]
    emulator.start()

    began = time.perf_counter()
    for u in users:
        for k in range(args.meetings):
            start = YEAR_START + dt.timedelta(days=k * 365 // max(1, args.meetings), hours=k % 8)
            emulator.store.add_calendar_item(
                u,
                subject=f"Meeting {k}" + (" @webex" if k % 10 == 0 else ""),
                start=start,
                end=start + dt.timedelta(minutes=30),
                body="Agenda",
                required_attendees=[users[(k + 1) % len(users)]],
            )
    seeded = time.perf_counter() - began

    db = open_database(sqlite_url(work / "node.db"), "node")
    cloud = TimedCloud(work / "cloud.sqlite")
    settings = EwsSettings(
        username="CONTOSO\\svc-hybridge", test_mailbox=users[0], ews_url=emulator.ews_url
    )
    backend = TimedBackend(settings, PASSWORD, ssl_context=context, max_connections=args.workers)
    backend.written = {}
    engine = SyncEngine(
        backend,
        SyncStateStore(db, "bench"),
        cloud,
        page_size=512,
        poll_interval=3600,
        workers=args.workers,
    )
    engine.set_mailboxes(users)
    began = time.perf_counter()
    outcomes = engine.run_due()
    initial = time.perf_counter() - began
    upserts = sum(o.upserts for o in outcomes)
    joins = sum(o.joins_written for o in outcomes)
    conns_initial = accepted
    connector_bytes = heap_after_sync(settings, context, db, users, args.workers)
    heap_conns = accepted - conns_initial

    notifier = EwsStreamingNotifier(backend, connection_minutes=29)
    stop = threading.Event()
    runner = threading.Thread(target=engine.run_forever, args=(stop,), kwargs={"max_wait": 0.5})
    notifier.watch(users, engine.notify)
    runner.start()
    # Wait until every group has subscribed and connected, and the catch-up syncs that a
    # (re)connection triggers are done: changes are measured from a quiet connector.
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline and (
        notifier.connections_opened < len(notifier.groups) or not engine.quiet
    ):
        time.sleep(0.05)
    time.sleep(0.5)
    rng = random.Random(8)
    made: dict[str, tuple[str, float]] = {}
    for i in range(args.changes):
        user = rng.choice(users)
        subject = f"bench-change-{i} @webex"
        at = time.perf_counter()
        item = emulator.store.add_calendar_item(
            user,
            subject=subject,
            start=YEAR_START + dt.timedelta(days=400),
            end=YEAR_START + dt.timedelta(days=400, minutes=30),
            body="Please join",
        )
        made[subject] = (item.item_id, at)
        time.sleep(0.05)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and (
        len(cloud.seen) < len(made) or len(backend.written) < len(made)
    ):
        time.sleep(0.05)
    stop.set()
    notifier.stop()
    runner.join(10)
    engine.close()
    backend.close()
    emulator.stop()

    seen = [cloud.seen[s] - at for s, (_, at) in made.items() if s in cloud.seen]
    written = [backend.written[i] - at for _, (i, at) in made.items() if i in backend.written]
    print(f"mailboxes                      {args.mailboxes}")
    print(f"meetings per mailbox           {args.meetings}  (seeding took {seeded:.1f} s)")
    print(
        f"initial sync                   {initial:.2f} s  ({upserts} meetings to the cloud, "
        f"{joins} join details written, {upserts / initial:.0f} meetings/s)"
    )
    if seen:
        print(
            f"change -> cloud sees it        p50 {statistics.median(seen) * 1000:.0f} ms  "
            f"p99 {percentile(seen, 99) * 1000:.0f} ms  ({len(seen)}/{len(made)} seen)"
        )
    if written:
        print(
            f"change -> join details written p50 {statistics.median(written) * 1000:.0f} ms  "
            f"p99 {percentile(written, 99) * 1000:.0f} ms  ({len(written)}/{len(made)} written)"
        )
    print(
        f"connections to Exchange        {conns_initial} during the initial sync, "
        f"{accepted - heap_conns} in total (streaming groups: {-(-args.mailboxes // 200)})"
    )
    print(
        f"connector heap per mailbox     {connector_bytes / args.mailboxes / 1024:.1f} KiB "
        "(tracemalloc, second pass; goal < 20 KiB)"
    )
    db.dispose()
    cloud.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
