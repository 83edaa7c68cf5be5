"""Both Alembic histories and ``open_database`` on a real PostgreSQL server.

Every revision is applied one at a time up to head and then undone one at a time down to
base, so a migration whose ``downgrade()`` leaves something behind (a table, an index, a
type) or whose ``upgrade()`` only works on SQLite fails here. The histories are read from
the migration directories, so revisions added later are covered without editing this file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from hybridge.storage import StorageError
from hybridge.storage.db import (
    Schema,
    alembic_config,
    database_url,
    downgrade,
    open_database,
    upgrade,
)

SCHEMAS: tuple[Schema, ...] = ("node", "cloud")


def _history(schema: Schema) -> list[str]:
    """The schema's revisions, oldest first (one linear history: no branches)."""
    script = ScriptDirectory.from_config(alembic_config(schema))
    assert len(script.get_heads()) == 1, f"{schema} history has branches: {script.get_heads()}"
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _current(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _schema_objects(engine: sa.Engine) -> dict[str, object]:
    """Tables with their columns, indexes and constraints; plus user types and sequences."""
    inspector = sa.inspect(engine)
    objects: dict[str, object] = {}
    for table in inspector.get_table_names():
        objects[table] = (
            sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ),
            sorted(i["name"] or "" for i in inspector.get_indexes(table)),
            sorted(c["name"] or "" for c in inspector.get_check_constraints(table)),
            sorted(c["name"] or "" for c in inspector.get_unique_constraints(table)),
        )
    with engine.connect() as connection:
        objects["<types>"] = sorted(
            connection.execute(
                sa.text(
                    "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
                    " WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')"
                )
            ).scalars()
        )
        objects["<sequences>"] = sorted(
            connection.execute(
                sa.text("SELECT sequence_name FROM information_schema.sequences")
            ).scalars()
        )
    return objects


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url(postgres_url))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_revision_upgrades_and_downgrades_on_postgresql(
    engine: sa.Engine, schema: Schema
) -> None:
    history = _history(schema)
    before = _schema_objects(engine)
    states = []
    for revision in history:
        upgrade(engine, schema, revision)
        assert _current(engine) == revision
        states.append(_schema_objects(engine))
    for index in range(len(history) - 1, 0, -1):
        downgrade(engine, schema, history[index - 1])
        assert _current(engine) == history[index - 1]
        # What revision N leaves after its downgrade is exactly what N-1 had made.
        assert _schema_objects(engine) == states[index - 1], history[index]
    downgrade(engine, schema, "base")
    assert _current(engine) is None
    after = _schema_objects(engine)
    after.pop("alembic_version", None)
    assert after == before
    # And up again over the same database: nothing left behind blocks a re-creation.
    upgrade(engine, schema)
    assert _current(engine) == history[-1]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_timestamp_column_keeps_its_time_zone_on_postgresql(
    engine: sa.Engine, schema: Schema
) -> None:
    # The code compares stored times with aware UTC datetimes: a column without time zone
    # would hand back naive values on PostgreSQL (SQLite has no such type at all).
    upgrade(engine, schema)
    naive = [
        f"{table}.{column['name']}"
        for table in sa.inspect(engine).get_table_names()
        for column in sa.inspect(engine).get_columns(table)
        if isinstance(column["type"], sa.DateTime) and not column["type"].timezone
    ]
    assert naive == []


@pytest.mark.parametrize("schema", SCHEMAS)
def test_open_database_migrates_a_bare_postgresql_url_to_head(
    postgres_url: str, schema: Schema
) -> None:
    # ``postgresql://`` (what an operator types) is read as psycopg 3, the driver we ship.
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    database = open_database(bare, schema)
    try:
        assert database.engine.dialect.driver == "psycopg"
        assert _current(database.engine) == _history(schema)[-1]
        # Opening again is a no-op migration, as a second cloud process does.
        open_database(bare, schema).dispose()
    finally:
        database.dispose()


def test_open_database_with_a_wrong_password_names_the_cause_not_the_password(
    postgres_url: str,
) -> None:
    url = database_url(postgres_url)
    wrong = url.set(password="not-the-password-at-all")
    with pytest.raises(StorageError) as caught:
        open_database(wrong.render_as_string(hide_password=False), "cloud")
    message = str(caught.value)
    assert message.startswith("cannot open database postgresql+psycopg://hybridge:***@127.0.0.1:")
    assert 'password authentication failed for user "hybridge"' in message
    assert "not-the-password-at-all" not in message
    assert str(url.password) not in message


def test_open_database_of_a_missing_database_names_it(postgres_url: str) -> None:
    url = database_url(postgres_url).set(database="no_such_database")
    with pytest.raises(StorageError) as caught:
        open_database(url.render_as_string(hide_password=False), "node")
    assert 'database "no_such_database" does not exist' in str(caught.value)


def test_open_database_refuses_an_unparseable_url_without_echoing_it() -> None:
    with pytest.raises(StorageError) as caught:
        open_database("postgres ql://user:s3cret@host/db", "node")
    assert str(caught.value) == (
        "the database URL cannot be parsed; expected sqlite:///<path> or"
        " postgresql://<user>:<password>@<host>:<port>/<database>"
    )


def test_a_transaction_error_on_postgresql_is_translated_and_rolled_back(
    postgres_url: str,
) -> None:
    database = open_database(postgres_url, "node")
    try:
        table = sa.table(
            "trust_state", sa.column("name"), sa.column("value"), sa.column("updated_at")
        )
        row = {"name": "k", "value": "v", "updated_at": sa.func.now()}
        with database.transaction() as session:
            session.execute(sa.insert(table).values(**row))
        with pytest.raises(StorageError) as caught, database.transaction() as session:
            session.execute(sa.insert(table).values(**{**row, "name": "other"}))
            session.execute(sa.insert(table).values(**row))
        assert str(caught.value).startswith(
            "database error: IntegrityError: duplicate key value violates unique constraint"
        )
        with database.transaction() as session:
            names = session.execute(sa.select(table.c.name)).scalars().all()
        assert names == ["k"]
    finally:
        database.dispose()


@pytest.mark.parametrize("schema", SCHEMAS)
def test_processes_starting_together_migrate_once_on_postgresql(
    postgres_url: str, schema: Schema
) -> None:
    # Cloud processes of one deployment start together on an empty database: each runs
    # open_database(); the first migrates, the others wait for it and find head.
    barrier = threading.Barrier(3)
    outcomes: list[object] = []

    def start() -> None:
        barrier.wait(10)
        try:
            open_database(postgres_url, schema).dispose()
            outcomes.append("ok")
        except StorageError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == ["ok", "ok", "ok"]
    engine = sa.create_engine(database_url(postgres_url))
    try:
        assert _current(engine) == _history(schema)[-1]
    finally:
        engine.dispose()
