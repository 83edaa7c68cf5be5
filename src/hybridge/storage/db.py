"""Open a role's database and bring its schema up to date with Alembic.

``open_database`` is the one place that creates engines: SQLite gets WAL, foreign keys and a
busy timeout so that a CLI command and a running server can share the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hybridge.storage import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

Schema = Literal["node", "cloud"]
_MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: a commit survives a power cut; the trust store is small, the cost is too.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class Database:
    """An engine and its session factory for one role's schema."""

    def __init__(self, engine: sa.Engine, schema: Schema) -> None:
        self.engine = engine
        self.schema = schema
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error.

        Raises:
            StorageError: the database refused the work (translated from SQLAlchemy).
        """
        session = self.sessions()
        try:
            with session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(
                f"database error: {exc.__class__.__name__}: {exc.orig!s}"
                if hasattr(exc, "orig")
                else f"database error: {exc}"
            ) from exc
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def database_url(url: str) -> sa.URL:
    """``url`` parsed, with PostgreSQL's driver made explicit.

    A bare ``postgresql://`` URL means psycopg2 to SQLAlchemy; Hybridge ships psycopg 3
    (``psycopg[binary]``), so the bare form is read as ``postgresql+psycopg://``.

    Raises:
        StorageError: ``url`` is not a database URL.
    """
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError) as exc:
        # The input is not quoted: it may hold a password.
        raise StorageError(
            "the database URL cannot be parsed; expected sqlite:///<path> or"
            " postgresql://<user>:<password>@<host>:<port>/<database>"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_database(url: str, schema: Schema, *, migrate: bool = True) -> Database:
    """Open the database at ``url`` and upgrade its ``schema`` to the newest revision.

    Raises:
        StorageError: the database cannot be opened or migrated (the message names the URL
            with its password masked).
    """
    parsed = database_url(url)
    # repr() of a URL masks the password: it is safe in a message and a log line.
    shown = repr(parsed)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # A server database outlives its connections (restarts, fail-overs, idle
            # timeouts): check a pooled connection before handing it out.
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        if migrate:
            upgrade(engine, schema)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database {shown}: {exc}") from exc
    return Database(engine, schema)


def alembic_config(schema: Schema) -> Config:
    from alembic.config import Config  # imported on use: alembic costs ~0.5 s at start-up

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS / schema))
    return cfg


#: PostgreSQL advisory-lock keys serialising migrations of each schema ("HYBMIG" + schema).
_MIGRATION_LOCK_KEYS: dict[str, int] = {
    "node": 0x4859_424D_4947_0001,
    "cloud": 0x4859_424D_4947_0002,
}


def _lock_migrations(connection: sa.Connection, schema: Schema) -> None:
    # Several cloud processes starting at once on one PostgreSQL database would each run
    # the migrations: one would fail creating a table the other just made. The first to
    # take this transaction-scoped lock migrates; the others wait, then find the schema at
    # head. (SQLite serialises writers on the file, and its DDL takes that lock.)
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEYS[schema])))


def upgrade(engine: sa.Engine, schema: Schema, revision: str = "head") -> None:
    """Run the schema's Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command

    cfg = alembic_config(schema)
    with engine.begin() as connection:
        _lock_migrations(connection, schema)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: sa.Engine, schema: Schema, revision: str = "base") -> None:
    """Run the schema's Alembic migrations down to ``revision`` on ``engine``."""
    from alembic import command

    cfg = alembic_config(schema)
    with engine.begin() as connection:
        _lock_migrations(connection, schema)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)
