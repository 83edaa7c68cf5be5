"""The persisted sync state (migration 0006_calendar) on a real SQLite node database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from hybridge.calendar.errors import SyncStateStoreError
from hybridge.calendar.state import SyncStateStore
from hybridge.storage.db import Database, alembic_config, open_database, sqlite_url


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(sqlite_url(tmp_path / "node.db"), "node")
    yield database
    database.dispose()


def test_unknown_mailbox_has_no_state(db: Database) -> None:
    row = SyncStateStore(db, "ews-1").load("Alice@contoso.test")
    assert (row.mailbox, row.sync_state, row.resyncing, row.status) == (
        "alice@contoso.test",
        None,
        False,
        "ok",
    )


def test_state_survives_a_new_store_and_is_per_configuration(db: Database, tmp_path: Path) -> None:
    SyncStateStore(db, "ews-1").save("alice@contoso.test", "S1")
    SyncStateStore(db, "ews-2").save("alice@contoso.test", "OTHER")
    db.dispose()
    reopened = open_database(sqlite_url(tmp_path / "node.db"), "node")
    try:
        assert SyncStateStore(reopened, "ews-1").load("ALICE@contoso.test").sync_state == "S1"
        assert SyncStateStore(reopened, "ews-2").load("alice@contoso.test").sync_state == "OTHER"
    finally:
        reopened.dispose()


def test_save_replaces_and_status_keeps_position(db: Database) -> None:
    store = SyncStateStore(db, "ews-1")
    store.save("alice@contoso.test", "S1", resyncing=True)
    store.save("alice@contoso.test", "S2")
    store.set_status("alice@contoso.test", "error", "denied")
    row = store.load("alice@contoso.test")
    assert (row.sync_state, row.resyncing, row.status, row.reason) == (
        "S2",
        False,
        "error",
        "denied",
    )
    assert [r.mailbox for r in store.mailboxes()] == ["alice@contoso.test"]
    store.delete("alice@contoso.test")
    assert store.mailboxes() == []


def test_status_outside_the_allowed_set_is_refused_by_the_table(db: Database) -> None:
    store = SyncStateStore(db, "ews-1")
    with pytest.raises(SyncStateStoreError, match="cannot save the sync state of 'alice"):
        store.save("alice@contoso.test", "S", status="broken")  # type: ignore[arg-type]


def test_config_key_is_bounded(db: Database) -> None:
    with pytest.raises(SyncStateStoreError, match=r"must be 1\.\.64 characters"):
        SyncStateStore(db, "")
    with pytest.raises(SyncStateStoreError, match=r"must be 1\.\.64 characters"):
        SyncStateStore(db, "x" * 65)


def test_migration_creates_the_table_at_head(db: Database) -> None:
    with db.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("calendar_sync")}
    heads = ScriptDirectory.from_config(alembic_config("node")).get_heads()
    assert [version] == heads
    assert {"config", "mailbox", "sync_state", "resyncing", "status"} <= columns
