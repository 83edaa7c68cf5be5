"""cloud.control_store on the real SQLite and PostgreSQL databases.

Two cloud nodes (here: threads) touching the same connector at once must both succeed: a
SELECT-then-INSERT of the channel row let both see "absent" and the second INSERT fail on
the primary key. The batched event writer must give the same state as one event at a time.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hybridge.cloud import control_store
from hybridge.cloud.control_models import connector_channel
from hybridge.cloud.control_store import ChannelEvent
from hybridge.cloud.models import connector
from hybridge.cloud.orgs import get_or_create_organisation
from hybridge.storage import StorageError
from hybridge.storage.db import Database, open_database, sqlite_url
from hybridge.web.clock import aware

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
STALE = dt.timedelta(seconds=90)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "cloud.db")
    else:
        url = request.getfixturevalue("postgres_url")
    database = open_database(url, "cloud")
    yield database
    database.dispose()


def _connector(db: Database) -> str:
    """A registered connector row (the channel row refers to it)."""
    connector_id = str(uuid.uuid4())
    with db.transaction() as session:
        org = get_or_create_organisation(session, "Acme", NOW)
        session.execute(
            sa.insert(connector).values(
                id=connector_id,
                org_id=org.id,
                hostname="connector.acme.test",
                key_fp="0" * 64,
                certificate_pem="-",
                certificate_serial="1",
                trust_mode="auto",
                status="active",
                registered_at=NOW,
                approved_by="test",
            )
        )
    return connector_id


def _seen(connector_id: str, at: dt.datetime, seq: int, kind: str = "heartbeat") -> ChannelEvent:
    data = {"version": "1.0", "status": "ok", "alarms": ["a"], "installed_seq": seq}
    return ChannelEvent(kind, connector_id, at, data)


def _channel(db: Database, connector_id: str) -> sa.Row[tuple[object, ...]]:
    with db.transaction() as session:
        return session.execute(
            sa.select(connector_channel).where(connector_channel.c.connector_id == connector_id)
        ).one()


def _race(threads: int, work: object) -> list[BaseException]:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            work()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    return errors


def test_parallel_first_events_of_one_connector_all_succeed(db: Database) -> None:
    connector_id = _connector(db)

    def touch() -> None:
        with db.transaction() as session:
            control_store.write_events(session, [_seen(connector_id, NOW, 3, "online")], "n1")

    assert _race(8, touch) == []
    row = _channel(db, connector_id)
    assert row.online is True
    assert row.reported_sequence == 3


def test_parallel_command_ids_of_a_new_connector_are_distinct(db: Database) -> None:
    connector_id = _connector(db)
    ids: list[int] = []

    def reserve() -> None:
        with db.transaction() as session:
            ids.append(control_store.next_command_id(session, connector_id))

    assert _race(8, reserve) == []
    assert sorted(ids) == list(range(1, 9))
    assert _channel(db, connector_id).last_command_id == 8


def test_an_existing_channel_row_is_not_reset(db: Database) -> None:
    connector_id = _connector(db)
    with db.transaction() as session:
        assert control_store.next_command_id(session, connector_id) == 1
        control_store.write_events(session, [_seen(connector_id, NOW, 3, "online")], "n1")
    with db.transaction() as session:
        control_store.write_events(session, [_seen(connector_id, NOW, 4)], "n1")
        assert control_store.next_command_id(session, connector_id) == 2


def test_events_of_an_unknown_connector_are_refused_by_the_foreign_key(db: Database) -> None:
    # ON CONFLICT DO NOTHING only forgives the existing row, never a missing connector.
    with (
        pytest.raises(StorageError, match=r"IntegrityError: (?i:.*foreign key)"),
        db.transaction() as session,
    ):
        control_store.write_events(session, [_seen("no-such-connector", NOW, 1)], "n1")


def test_a_batch_gives_the_state_of_its_events_in_order(db: Database) -> None:
    first, second = _connector(db), _connector(db)
    t = [NOW + dt.timedelta(seconds=s) for s in range(6)]
    events = [
        _seen(first, t[0], 1, "online"),
        _seen(second, t[0], 1, "online"),
        ChannelEvent("push", first, t[1], {"seq": 2}),
        ChannelEvent("push", second, t[1], {"seq": 2}),
        ChannelEvent("ack", first, t[2], {"seq": 2}),
        # Another node never marks offline a connection it does not hold.
        ChannelEvent("offline", first, t[3]),
        ChannelEvent("offline", second, t[3]),
        _seen(first, t[4], 2),
    ]
    with db.transaction() as session:
        control_store.write_events(session, events[:5], "n1")
        control_store.write_events(session, events[5:6], "n2")
        control_store.write_events(session, events[6:], "n1")
    one, two = _channel(db, first), _channel(db, second)
    assert (one.last_push_sequence, one.last_ack_sequence, one.reported_sequence) == (2, 2, 2)
    assert (two.last_push_sequence, two.last_ack_sequence, two.reported_sequence) == (2, None, 1)
    assert one.online is True and one.offline_since is None
    assert two.online is False and aware(two.offline_since) == t[3]
    assert one.alarms == ["a"] and one.version == "1.0" and one.node == "n1"
    with db.transaction() as session:
        rows = {
            r.id: r
            for r in session.execute(
                sa.select(connector.c.id, connector.c.installed_sequence, connector.c.last_seen_at)
            )
        }
        view = control_store.channel_view(session, first, t[4], STALE)
    assert rows[first].installed_sequence == 2 and aware(rows[first].last_seen_at) == t[4]
    assert rows[second].installed_sequence == 1 and aware(rows[second].last_seen_at) == t[0]
    assert view.online is True and view.reported_sequence == 2
    assert view.last_heartbeat_at == t[4] and view.alarms == ("a",)
