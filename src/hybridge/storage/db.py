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
from sqlalchemy.exc import SQLAlchemyError
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


def open_database(url: str, schema: Schema, *, migrate: bool = True) -> Database:
    """Open the database at ``url`` and upgrade its ``schema`` to the newest revision.

    Raises:
        StorageError: the database cannot be opened or migrated.
    """
    try:
        engine = sa.create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if migrate:
            upgrade(engine, schema)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database {engine.url!r}: {exc}") from exc
    return Database(engine, schema)


def alembic_config(schema: Schema) -> Config:
    from alembic.config import Config  # imported on use: alembic costs ~0.5 s at start-up

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS / schema))
    return cfg


def upgrade(engine: sa.Engine, schema: Schema, revision: str = "head") -> None:
    """Run the schema's Alembic migrations up to ``revision`` on ``engine``."""
    from alembic import command

    cfg = alembic_config(schema)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
