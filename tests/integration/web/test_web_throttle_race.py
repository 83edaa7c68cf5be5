"""Login throttling under parallel guessing, on the real SQLite and PostgreSQL databases.

Parallel failures must each count (OWASP ASVS V2.2.1): a read-then-write count let 16
threads x 5 failures be recorded as 14, so a parallel attacker got far more tries.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.web import throttle
from hybridge.web.schema import web_login_failure

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
KEY = throttle.account_key("ops@acme.test")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "cloud.db")
    else:
        url = request.getfixturevalue("postgres_url")
    database = open_database(url, "cloud")
    yield database
    database.dispose()


def _row(db: Database) -> sa.Row[tuple[object, ...]]:
    with db.transaction() as session:
        return session.execute(
            sa.select(web_login_failure).where(web_login_failure.c.key == KEY)
        ).one()


def _fail(db: Database, at: dt.datetime, policy: throttle.ThrottlePolicy) -> None:
    with db.transaction() as session:
        throttle.record_failure(session, KEY, 5, policy, at)


def test_parallel_failures_are_all_counted(db: Database) -> None:
    policy = throttle.ThrottlePolicy()
    threads, per_thread = 16, 5
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def attack() -> None:
        barrier.wait(timeout=30)
        for _ in range(per_thread):
            try:
                _fail(db, NOW, policy)
            except BaseException as exc:
                errors.append(exc)

    workers = [threading.Thread(target=attack) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    row = _row(db)
    assert row.failures == threads * per_thread
    # The lock is the one the last count earns (capped), never an earlier, shorter one.
    wait = policy.delay_after(threads * per_thread, 5)
    assert throttle.locked_for_row(row.locked_until, NOW) == int(wait)


def test_a_stale_count_starts_again_and_an_earlier_lock_is_not_shortened(db: Database) -> None:
    policy = throttle.ThrottlePolicy(forget_after=3600.0)
    for _ in range(7):
        _fail(db, NOW, policy)
    assert _row(db).failures == 7
    locked = throttle.locked_for_row(_row(db).locked_until, NOW)
    assert locked == int(policy.delay_after(7, 5)) == 2

    later = NOW + dt.timedelta(hours=2)
    _fail(db, later, policy)
    row = _row(db)
    assert row.failures == 1
    # The new failure earns no lock, and the old lock (already past) is left as it was.
    assert throttle.locked_for_row(row.locked_until, later) == 0
